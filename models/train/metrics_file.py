"""The bundle's metrics.json: what training writes, and the recipe studies that join it.

Training (``python -m vigil.models.train``) writes the bundle's own figures. The recipe studies
(``screen --record``, ``threshold_rules`` through the screen's record, ``unit_gap [--by-hour] --record``,
``importance --record``, ``paired --record``) add keys of their own: they describe recipes on their
own folds, not one trained bundle, so a retrain keeps them. Studies of one bundle's OOF predictions
(``combined.threshold_by_ward_of_set_a``) and ``previous_bundle`` are not carried: they would describe
the bundle being replaced.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RECIPE_STUDIES = ("screen", "screen_v2", "threshold_rules", "unit_gap", "unit_gap_by_hour", "importance", "paired")


def record(path: Path, key: str, value: Any) -> None:
    """Set ``key`` of the metrics.json at ``path`` to ``value``, keeping every other key."""
    metrics = json.loads(path.read_text())
    metrics[key] = value
    path.write_text(json.dumps(metrics, indent=2) + "\n")


def carry_recipe_studies(path: Path, metrics: dict[str, Any]) -> list[str]:
    """Copy the recipe studies of the metrics.json at ``path`` (if readable) into ``metrics``, which
    training is about to write there; the keys carried."""
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    carried = [k for k in RECIPE_STUDIES if k in old and k not in metrics]
    metrics.update({k: old[k] for k in carried})
    return carried
