"""What the surgical -> medical shift costs beyond the surgical ICU's few septic stays (issue 12).

The worst AUROC of every recipe is surgical -> medical (~0.74) against ~0.78-0.79 for the medical
ICU's own inner CV. The surgical ICU has 222 septic stays, the medical ICU's training folds ~430: is
the gap the unit, or just fewer septic stays to learn from? The control here is the medical ICU's
inner CV again, with each training side's septic stays subsampled to the other unit's count (every
non-septic stay kept). If it scored like surgical -> medical, the proxy's worst case would be
measuring a small training set, not a shift.

    .venv/bin/python -m vigil.models.train.unit_gap --config full~psmooth~mono --seed 1 --seed 2 --json \
        [--record models/artifacts/stepping/metrics.json]

``--by-hour`` asks where in the stay the gap lies, from the screen's cached predictions of the recipe
(``shiftpred/<config>-s<seed>.npz``, no refit): the hourly AUROC of each unit's stays in bands of
hours since ICU admission, scored by the model of all of set A (its CV), by the unit's own inner CV,
and by the other unit's model, as drawn and with the unit's labs drawn once a day; and, under
``inputs``, by single inputs alone (``SIGNAL_INPUTS``: how much each carries in each unit and band).
Recorded under ``unit_gap_by_hour``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vigil.models.stay_features import TREE_FEATURES
from vigil.models.train import cohort_features, data, screen, shifts, study


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


HOUR_BANDS: tuple[tuple[int, int | None], ...] = ((0, 12), (12, 48), (48, None))
# single inputs scored alone per unit and band (``input_signal``): the SIRS vital signs and counts,
# the shock index, and the hours in the ICU
SIGNAL_INPUTS: tuple[str, ...] = (
    "HR_last",
    "Temp_max24h",
    "Resp_max24h",
    "WBC_last",
    "shock_index",
    "Lactate_last",
    "icu_hours",
)


def _bands(y: np.ndarray, at: np.ndarray, scorers: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per band of ``HOUR_BANDS`` (rows' hours ``at``): its hours, septic hours, and the hourly AUROC of
    each scorer over the band's rows where it is known (not NaN), when both classes are there."""
    from vigil.models.utility import auroc_auprc

    bands: dict[str, Any] = {}
    for lo, hi in HOUR_BANDS:
        band = (at >= lo) & (at < (hi if hi is not None else np.inf))
        cell: dict[str, Any] = {"hours": int(band.sum()), "septic_hours": int(y[band].sum())}
        for name, score in scorers.items():
            known = band & np.isfinite(score)
            if 0 < y[known].sum() < known.sum():
                cell[name] = round(auroc_auprc(y[known], score[known])[0], 4)
        bands[f"{lo}-{hi if hi is not None else ''}"] = cell
    return bands


def by_icu_hour(u: shifts.Utility, unit: np.ndarray, hour: np.ndarray, pred: shifts.ShiftPredictions) -> dict[str, Any]:
    """Per unit (``unit1``, ``unit2``) and band of hours in the ICU (``0-12``, ``12-48``, ``48-``; each
    row's ``hour``, ``Cohort.hour_of_row``): the hourly AUROC of the unit's rows by each model that
    scored them, with the band's hours and septic hours. Single-model predictions ([1, rows] arrays)."""
    row_unit = u.rows_of(unit)
    out: dict[str, Any] = {}
    for a, key in zip(shifts.UNITS, shifts.UNIT_SHIFTS, strict=True):
        b = 3 - a
        rows = row_unit == b
        scorers = {
            "set_a_cv": pred.oof[0][rows],
            "own_unit_cv": pred.in_unit[b][0],
            "other_unit": pred.other_unit[key][0],
        }
        for h, v in pred.other_unit_sched.get(key, {}).items():
            scorers[f"other_unit_{shifts.daily_name(h)}"] = v[0]
        out[f"unit{b}"] = _bands(u.labels[rows], hour[rows], scorers)
    return out


def input_signal(
    u: shifts.Utility, unit: np.ndarray, hour: np.ndarray, x: np.ndarray, names: list[str]
) -> dict[str, Any]:
    """``by_icu_hour``'s bands with single inputs as the scores: the hourly AUROC of each of
    ``SIGNAL_INPUTS`` alone (``x``: every row's inputs, columns ``names``), per unit and band."""
    row_unit = u.rows_of(unit)
    out: dict[str, Any] = {}
    for b in shifts.UNITS:
        rows = row_unit == b
        scorers = {n: np.asarray(x[rows, names.index(n)], dtype=np.float64) for n in SIGNAL_INPUTS}
        out[f"unit{b}"] = _bands(u.labels[rows], hour[rows], scorers)
    return out


def main(argv: list[str] | None = None) -> int:
    from vigil.models.utility import auroc_auprc

    ap = study.parser("unit_gap", "unit_gap")
    ap.add_argument("--by-hour", action="store_true", help="the gap by hours in the ICU, from cached predictions")
    args = ap.parse_args(argv)
    if args.by_hour:
        return _by_hour(args)
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


def _by_hour(args: Any) -> int:
    c = data.load_cohort()
    assert c.unit is not None
    u, hour = shifts.Utility(c.labels, c.lengths), c.hour_of_row()
    out: dict[str, Any] = {"config": args.config, "seeds": {}}
    for seed in args.seed or [1]:
        path = screen.PRED_DIR / f"{args.config}-s{seed}.npz"
        if not path.exists():
            raise SystemExit(f"no cached predictions at {path}: screen the recipe first (models.train.screen)")
        out["seeds"][str(seed)] = by_icu_hour(u, c.unit, hour, shifts.ShiftPredictions.load(path))
        print(f"seed {seed}: {out['seeds'][str(seed)]}", flush=True)
    x = cohort_features.Matrices(c).tree(None)  # the bundle's inputs, as recorded
    out["inputs"] = input_signal(u, c.unit, hour, x, list(TREE_FEATURES))
    print(f"inputs: {out['inputs']}", flush=True)
    return study.finish(args, "unit_gap_by_hour", out)


if __name__ == "__main__":
    raise SystemExit(main())
