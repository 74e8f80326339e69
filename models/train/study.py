"""What the unit-shift studies (``unit_gap``, ``importance``) share: their command line and inputs."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vigil.models.train import cohort_features, data, labels, metrics_file, shifts


def parser(prog: str, key: str) -> argparse.ArgumentParser:
    """``--config``, ``--seed`` (repeatable), ``--folds``, ``--json`` and ``--record`` (into ``key``)."""
    ap = argparse.ArgumentParser(prog=f"python -m vigil.models.train.{prog}")
    ap.add_argument("--config", default="full~psmooth~mono", help="a tree recipe of models.train.screen")
    ap.add_argument("--seed", type=int, action="append", default=[])
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    ap.add_argument("--record", type=Path, help=f"also write the summary into this metrics.json (key {key})")
    return ap


@dataclass
class Inputs:
    """Set A with its unit, utility targets and weights, the utility scorer and the feature matrices."""

    c: data.Cohort
    unit: np.ndarray
    y: np.ndarray
    w: np.ndarray
    u: shifts.Utility
    mats: cohort_features.Matrices


def load() -> Inputs:
    c = data.load_cohort()
    assert c.unit is not None
    y, w = labels.utility_targets(c.labels, c.lengths)
    return Inputs(c, c.unit, y, w, shifts.Utility(c.labels, c.lengths), cohort_features.Matrices(c))


def finish(args: argparse.Namespace, key: str, out: dict[str, Any]) -> int:
    """Record ``out`` under ``key`` (``--record``), print it as the last line (``--json``)."""
    if args.record:
        metrics_file.record(args.record, key, out)
    if args.json:
        print(json.dumps(out))
    return 0
