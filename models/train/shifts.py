"""Shift tests built from set A (issue 12): the figures models are chosen by.

- ``cv``: grouped k-fold by patient; out-of-fold (OOF) scores; each fold's threshold is chosen on the
  other folds' OOF scores (nested), so no utility here is tuned on the rows it reports.
- ``labs_thinned``: the CV fold models score their held-out stays with each hour's lab draw kept
  with probability 0.1 (seeded, ``models.shift.thin_labs``), at the same nested thresholds.
- ``unit1->unit2`` / ``unit2->unit1``: trained on one ICU type of set A, tested on the other; the
  threshold is the one chosen on the training unit's OOF scores from ``cv`` (those fold models saw
  the other unit's stays, never its labels at threshold time: documented approximation).

Each block reports AUROC, AUPRC, normalized utility at the threshold the procedure ships, the
utility at the best threshold in hindsight, and both thresholds (how far the best one moves).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.models.utility import auroc_auprc, best_threshold, utility_curve, utility_tables

Fit = Callable[[np.ndarray], Any]  # train rows (bool mask) -> model
Predict = Callable[[Any, np.ndarray, bool], np.ndarray]  # (model, test rows, thinned) -> scores


class Utility:
    """Per-row utility tables of a cohort, to score thresholds on any subset of stays."""

    def __init__(self, labels: np.ndarray, lengths: np.ndarray) -> None:
        self.labels, self.lengths = labels, lengths
        self.offsets = np.r_[0, np.cumsum(lengths)]
        by = [labels[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]
        self.u0, self.u1, _, _ = utility_tables(by)
        best = np.zeros(len(lengths))
        for p, lab in enumerate(by):
            if lab.any():
                t = int(np.argmax(lab)) + 6
                sl = slice(self.offsets[p] + max(0, t - 12), self.offsets[p] + min(t + 4, len(lab)))
                best[p] = self.u1[sl].sum() - self.u0[sl].sum()
        self.best_gain = best  # per stay: utility of the ideal alerts minus no alerts

    def rows_of(self, stays: np.ndarray) -> np.ndarray:
        return np.repeat(stays, self.lengths)

    def threshold(self, score: np.ndarray, rows: np.ndarray) -> float:
        stays = self._stays(rows)
        inaction = float(self.u0[rows].sum())
        return best_threshold(score, self.u0[rows], self.u1[rows], inaction + self.best_gain[stays].sum(), inaction)

    def utility(self, score: np.ndarray, rows: np.ndarray, threshold: float) -> float:
        gain = float(np.where(score >= threshold, self.u1[rows] - self.u0[rows], 0.0).sum())
        return gain / float(self.best_gain[self._stays(rows)].sum())

    def best(self, score: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
        stays = self._stays(rows)
        inaction = float(self.u0[rows].sum())
        thr, util = utility_curve(score, self.u0[rows], self.u1[rows], inaction + self.best_gain[stays].sum(), inaction)
        i = int(np.argmax(util))
        return float(thr[i]), float(util[i])

    def _stays(self, rows: np.ndarray) -> np.ndarray:
        return np.unique(np.repeat(np.arange(len(self.lengths)), self.lengths)[rows])


def block(u: Utility, score: np.ndarray, rows: np.ndarray, threshold: float) -> dict[str, float]:
    auroc, auprc = auroc_auprc(u.labels[rows], score)
    best_thr, best_util = u.best(score, rows)
    return {
        "auroc": round(auroc, 4),
        "auprc": round(auprc, 4),
        "utility": round(u.utility(score, rows, threshold), 4),
        "threshold": round(threshold, 5),
        "best_utility": round(best_util, 4),
        "best_threshold": round(best_thr, 5),
        "alert_share": round(float((score >= threshold).mean()), 4),
    }


@dataclass
class ShiftPredictions:
    """One recipe's scores under every shift: OOF (plain and thinned labs) and each unit's test rows."""

    oof: np.ndarray
    oof_thin: np.ndarray
    other_unit: dict[str, np.ndarray]  # "unit1->unit2" -> scores of the unit-2 rows


def predict_shifts(
    u: Utility, patient_fold: np.ndarray, unit: np.ndarray, fit: Fit, predict: Predict, log=print
) -> tuple[ShiftPredictions, list[Any]]:  # type: ignore[no-untyped-def]
    """Fit the recipe once per fold and once per unit: (scores, fold models)."""
    row_fold = u.rows_of(patient_fold)
    n = len(u.labels)
    oof, oof_thin = np.zeros(n), np.zeros(n)
    models = []
    for f in range(int(patient_fold.max()) + 1):
        test = row_fold == f
        model = fit(~test)
        oof[test] = predict(model, test, False)
        oof_thin[test] = predict(model, test, True)
        models.append(model)
        log(f"  fold {f} done")
    row_unit = u.rows_of(unit)
    other = {}
    for a, b in ((1, 2), (2, 1)):
        other[f"unit{a}->unit{b}"] = predict(fit(row_unit == a), row_unit == b, False)
        log(f"  unit{a}->unit{b} done")
    return ShiftPredictions(oof, oof_thin, other), models


def figures(u: Utility, pred: ShiftPredictions, patient_fold: np.ndarray, unit: np.ndarray) -> dict[str, Any]:
    """Every shift block of one score (nested thresholds for CV and thinned labs; the training unit's
    OOF threshold for the other unit)."""
    row_fold = u.rows_of(patient_fold)
    out: dict[str, Any] = {"cv_folds": [], "thin_folds": []}
    for f in range(int(patient_fold.max()) + 1):
        test = row_fold == f
        thr = u.threshold(pred.oof[~test], ~test)
        out["cv_folds"].append(block(u, pred.oof[test], test, thr))
        out["thin_folds"].append(block(u, pred.oof_thin[test], test, thr))
    shipped = u.threshold(pred.oof, np.ones(len(pred.oof), bool))
    out["cv"] = _pooled(u, pred.oof, out["cv_folds"], shipped)
    out["labs_thinned"] = _pooled(u, pred.oof_thin, out["thin_folds"], shipped)
    row_unit = u.rows_of(unit)
    for name, scores in pred.other_unit.items():
        a, b = int(name[4]), int(name[-1])
        train, test = row_unit == a, row_unit == b
        out[name] = block(u, scores, test, u.threshold(pred.oof[train], train))
    names = ("cv", "labs_thinned", *pred.other_unit)
    out["worst"] = {m: min(out[s][m] for s in names) for m in ("auroc", "utility")}
    return out


def run_shift_tests(
    u: Utility, patient_fold: np.ndarray, unit: np.ndarray, fit: Fit, predict: Predict, log=print
) -> tuple[dict[str, Any], np.ndarray]:  # type: ignore[no-untyped-def]
    """Every shift test for one model recipe: (figures, OOF scores of every row)."""
    pred, _ = predict_shifts(u, patient_fold, unit, fit, predict, log)
    return figures(u, pred, patient_fold, unit), pred.oof


def _pooled(u: Utility, score: np.ndarray, folds: list[dict[str, float]], shipped: float) -> dict[str, float]:
    everything = np.ones(len(score), bool)
    auroc, auprc = auroc_auprc(u.labels, score)
    best_thr, best_util = u.best(score, everything)
    util = [f["utility"] for f in folds]
    return {
        "auroc": round(auroc, 4),
        "auprc": round(auprc, 4),
        "utility": round(float(np.mean(util)), 4),
        "utility_sd": round(float(np.std(util)), 4),
        "threshold": round(shipped, 5),
        "best_utility": round(best_util, 4),
        "best_threshold": round(best_thr, 5),
        "alert_share": round(float(np.mean([f["alert_share"] for f in folds])), 4),
    }
