"""What the surgical -> medical shift costs beyond the surgical ICU's few septic stays (issue 12).

The worst AUROC of every recipe is surgical -> medical (~0.74) against ~0.78-0.79 for the medical
ICU's own inner CV. The surgical ICU has 222 septic stays, the medical ICU's training folds ~430: is
the gap the unit, or just fewer septic stays to learn from? The control here is the medical ICU's
inner CV again, with each training side's septic stays subsampled to the other unit's count (every
non-septic stay kept). If it scored like surgical -> medical, the proxy's worst case would be
measuring a small training set, not a shift.

    .venv/bin/python -m vigil.models.train.unit_gap --config full~psmooth~mono --seed 1 --seed 2 --json \
        [--record models/artifacts/stepping/metrics.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from vigil.models.train import cohort_features, data, labels, metrics_file, screen, shifts


def septic_matched_scores(
    u: shifts.Utility,
    patient_fold: np.ndarray,
    keep_stays: np.ndarray,
    septic: np.ndarray,
    n_septic: int,
    fit: shifts.Fit,
    predict: shifts.Predict,
    rng: np.random.Generator,
) -> tuple[np.ndarray, list[int]]:
    """Inner-CV scores of the stays in ``keep_stays`` (bool per stay), each fold's model trained on the
    other folds' stays of ``keep_stays`` with their septic stays subsampled to ``n_septic``. Returns the
    scores of every row (0 outside ``keep_stays``) and the training stays per fold."""
    scores = np.zeros(len(u.labels))
    sizes = []
    for f in np.unique(patient_fold[keep_stays]):
        train = keep_stays & (patient_fold != f)
        test_rows = u.rows_of(keep_stays & (patient_fold == f))
        chosen = train & ~septic
        sick = np.nonzero(train & septic)[0]
        chosen[rng.choice(sick, min(n_septic, len(sick)), replace=False)] = True
        sizes.append(int(chosen.sum()))
        scores[test_rows] = predict(fit(u.rows_of(chosen)), test_rows, None)
    return scores, sizes


def main(argv: list[str] | None = None) -> int:
    from vigil.models.utility import auroc_auprc

    ap = argparse.ArgumentParser(prog="python -m vigil.models.train.unit_gap")
    ap.add_argument("--config", default="full~psmooth~mono", help="a tree recipe of models.train.screen")
    ap.add_argument("--seed", type=int, action="append", default=[])
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--json", action="store_true", help="print a JSON summary as the last line")
    ap.add_argument("--record", type=Path, help="also write the summary into this metrics.json (key unit_gap)")
    args = ap.parse_args(argv)
    c = data.load_cohort()
    assert c.unit is not None
    y, w = labels.utility_targets(c.labels, c.lengths)
    u = shifts.Utility(c.labels, c.lengths)
    mats = cohort_features.Matrices(c)
    septic = c.septic_stays()
    n_surgical = int(septic[c.unit == 2].sum())
    medical = c.unit == 1
    rows = u.rows_of(medical)
    out: dict[str, Any] = {"config": args.config, "surgical_septic_stays": n_surgical, "seeds": {}}
    for seed in args.seed or [1]:
        fold = data.grouped_folds(c, args.folds, seed)
        fit, predict, _ = screen.tree_recipe(args.config, seed, mats, y, w)
        full, _ = septic_matched_scores(u, fold, medical, septic, len(septic), fit, predict, np.random.default_rng(0))
        matched, sizes = septic_matched_scores(
            u, fold, medical, septic, n_surgical, fit, predict, np.random.default_rng(1000 + seed)
        )
        out["seeds"][str(seed)] = {
            "medical_own_cv_auroc": round(auroc_auprc(c.labels[rows], full[rows])[0], 4),
            "medical_own_cv_at_surgical_septic_count_auroc": round(auroc_auprc(c.labels[rows], matched[rows])[0], 4),
            "training_stays_per_fold": sizes,
        }
        print(f"seed {seed}: {out['seeds'][str(seed)]}", flush=True)
    if args.record:
        metrics_file.record(args.record, "unit_gap", out)
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
