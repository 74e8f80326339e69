"""Screen feature sets and recipes by the shift tests (``models.train.shifts``), LightGBM only.

    .venv-train/bin/python -m vigil.models.train.screen --config full --config no_missingness --seed 1

Results are appended as JSON lines to ``~/.cache/vigil/screen.jsonl`` (one per config and seed);
``--record models/artifacts/stepping/metrics.json`` copies them into the bundle's metrics (the card).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from vigil.models.stay_features import MISSINGNESS_FEATURES, TREE_FEATURES
from vigil.models.train import cohort_features, data, labels, shifts, trees

LAB_KEEP = 0.1


def columns(config: str) -> np.ndarray:
    names = np.array(TREE_FEATURES)
    keep = np.ones(len(names), bool)
    if config == "no_missingness":
        keep &= ~np.isin(names, list(MISSINGNESS_FEATURES))
    elif config == "no_baseline":
        keep &= ~np.char.endswith(names, "_from_baseline")
    elif config == "no_stay_history":
        keep &= ~(np.char.endswith(names, "_max_stay") | np.char.endswith(names, "_min_stay"))
    elif config not in ("full", "ens3"):
        raise SystemExit(f"unknown config {config}")
    return np.nonzero(keep)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", action="append", default=[])
    ap.add_argument("--seed", type=int, action="append", default=[])
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--out", default=str(data.CACHE_DIR / "screen.jsonl"))
    ap.add_argument("--record", type=Path, help="copy the screening results into this metrics.json and stop")
    args = ap.parse_args(argv)
    if args.record:
        metrics = json.loads(args.record.read_text())
        metrics["screen"] = [json.loads(line) for line in Path(args.out).read_text().splitlines() if line.strip()]
        args.record.write_text(json.dumps(metrics, indent=2) + "\n")
        return 0
    c = data.load_cohort()
    x, _ = cohort_features.cohort_matrices(c, "setA")
    y, w = labels.utility_targets(c.labels, c.lengths)
    u = shifts.Utility(c.labels, c.lengths)
    assert c.unit is not None
    for seed in args.seed or [1]:
        thin_c = cohort_features.thinned(c, LAB_KEEP, seed)
        x_thin, _ = cohort_features.cohort_matrices(thin_c, f"labs{LAB_KEEP}-s{seed}")
        fold = data.grouped_folds(c, args.folds, seed)
        for config in args.config or ["full"]:
            if config.startswith("gru"):
                _screen_gru(config, seed, c, u, fold, thin_c, args.out)
                continue
            cols = columns(config)
            t0 = time.perf_counter()

            n_seeds = 3 if config == "ens3" else 1  # ens3: the mean of three seeds' models

            def fit(rows: np.ndarray, cols: np.ndarray = cols, seed: int = seed, n: int = n_seeds) -> Any:
                xr = np.asarray(x[rows])[:, cols]
                return [trees.fit_weighted(xr, y[rows], w[rows], seed + 1000 * k) for k in range(n)]

            def predict(
                models: Any, rows: np.ndarray, thin: bool, cols: np.ndarray = cols, x_thin: np.ndarray = x_thin
            ) -> np.ndarray:
                src = np.asarray((x_thin if thin else x)[rows])[:, cols]
                return np.mean([m.predict(src) for m in models], axis=0)

            result, _ = shifts.run_shift_tests(u, fold, c.unit, fit, predict, log=print)
            record = {"config": config, "seed": seed, "features": len(cols), "seconds": round(time.perf_counter() - t0)}
            record.update({k: v for k, v in result.items() if not k.endswith("_folds")})
            with open(args.out, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            print(json.dumps({k: record[k] for k in ("config", "seed", "worst", "seconds")}), flush=True)
    return 0


def _screen_gru(
    config: str, seed: int, c: data.Cohort, u: shifts.Utility, fold: np.ndarray, thin_c: data.Cohort, out: str
) -> None:
    """``gru_e<epochs>_h<hidden>_n<negative share %>``: the sequence model alone under the shift tests."""
    from vigil.models.train import sequence

    parts = {p[0]: p[1:] for p in config.split("_")[1:]}
    kw = {"epochs": int(parts["e"]), "hidden": int(parts["h"]), "negative_share": int(parts["n"]) / 100}
    _, s = cohort_features.cohort_matrices(c, "setA")
    _, s_thin = cohort_features.cohort_matrices(thin_c, f"labs{LAB_KEEP}-s{seed}")
    y, w = labels.utility_targets(c.labels, c.lengths)
    o, patient = c.offsets, c.patient_of_row()
    t0 = time.perf_counter()

    def fit(rows: np.ndarray) -> Any:
        return sequence.fit(s, y, w, o, np.unique(patient[rows]), seed, log=lambda m: None, **kw)

    def predict(model: Any, rows: np.ndarray, thin: bool) -> np.ndarray:
        return sequence.predict(model, s_thin if thin else s, o, np.unique(patient[rows]))

    assert c.unit is not None
    result, _ = shifts.run_shift_tests(u, fold, c.unit, fit, predict, log=print)
    record = {"config": config, "seed": seed, "features": s.shape[1], "seconds": round(time.perf_counter() - t0)}
    record.update({k: v for k, v in result.items() if not k.endswith("_folds")})
    with open(out, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(json.dumps({k: record[k] for k in ("config", "seed", "worst", "seconds")}), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
