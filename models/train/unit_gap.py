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

from typing import Any

import numpy as np

from vigil.models.train import data, screen, shifts, study


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

    args = study.parser("unit_gap", "unit_gap").parse_args(argv)
    inputs = study.load()
    c, y, w, u, mats = inputs.c, inputs.y, inputs.w, inputs.u, inputs.mats
    septic = c.septic_stays()
    n_surgical = int(septic[inputs.unit == 2].sum())
    medical = inputs.unit == 1
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
    return study.finish(args, "unit_gap", out)


if __name__ == "__main__":
    raise SystemExit(main())
