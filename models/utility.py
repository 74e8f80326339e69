"""PhysioNet/CinC 2019 challenge metrics: normalized utility, AUROC, AUPRC.

Faithful to the challenge's ``evaluate_sepsis_score.py`` (Reyna et al., Crit Care Med 2020):
for a septic stay t_sepsis = (first hour with SepsisLabel = 1) + 6; a positive prediction earns up to
``max_u_tp`` between 12 h before and 3 h after t_sepsis (peak 6 h before), a missed case costs up to
``min_u_fn``, a false alarm ``u_fp`` per hour; predictions later than t_sepsis + 3 count nothing.
Normalized as (observed - no alerts) / (best - no alerts), summed over all stays.

Implemented per row as the pair (utility if 0 predicted, utility if 1 predicted) so that every
threshold can be scored at once (sort + cumulative sum) when a threshold is chosen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DT_EARLY = -12
DT_OPTIMAL = -6
DT_LATE = 3
MAX_U_TP = 1.0
MIN_U_FN = -2.0
U_FP = -0.05
U_TN = 0.0


def row_utilities(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u_if_negative, u_if_positive) per hour of one stay, as in compute_prediction_utility."""
    labels = np.asarray(labels)
    n = len(labels)
    u0 = np.full(n, U_TN, dtype=np.float64)
    u1 = np.full(n, U_FP, dtype=np.float64)
    if n == 0 or not np.any(labels):
        return u0, u1
    t_sepsis = int(np.argmax(labels)) - DT_OPTIMAL
    t = np.arange(n, dtype=np.float64)
    m_1 = MAX_U_TP / (DT_OPTIMAL - DT_EARLY)
    b_1 = -m_1 * DT_EARLY
    m_2 = -MAX_U_TP / (DT_LATE - DT_OPTIMAL)
    b_2 = -m_2 * DT_LATE
    m_3 = MIN_U_FN / (DT_LATE - DT_OPTIMAL)
    b_3 = -m_3 * DT_OPTIMAL
    rel = t - t_sepsis
    early = t <= t_sepsis + DT_OPTIMAL
    mid = (~early) & (t <= t_sepsis + DT_LATE)
    late = t > t_sepsis + DT_LATE
    u1 = np.where(early, np.maximum(m_1 * rel + b_1, U_FP), 0.0)
    u1 = np.where(mid, m_2 * rel + b_2, u1)
    u0 = np.where(mid, m_3 * rel + b_3, 0.0)
    u1[late] = 0.0
    u0[late] = 0.0
    return u0, u1


def best_predictions(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    best = np.zeros(len(labels), dtype=np.int8)
    if np.any(labels):
        t_sepsis = int(np.argmax(labels)) - DT_OPTIMAL
        best[max(0, t_sepsis + DT_EARLY) : min(t_sepsis + DT_LATE + 1, len(labels))] = 1
    return best


def patient_utility(labels: np.ndarray, predictions: np.ndarray) -> float:
    u0, u1 = row_utilities(labels)
    pred = np.asarray(predictions).astype(bool)
    return float(np.where(pred, u1, u0).sum())


def normalized_utility(labels: Sequence[np.ndarray], predictions: Sequence[np.ndarray]) -> float:
    observed = best = inaction = 0.0
    for lab, pred in zip(labels, predictions, strict=True):
        u0, u1 = row_utilities(lab)
        p = np.asarray(pred).astype(bool)
        b = best_predictions(lab).astype(bool)
        observed += float(np.where(p, u1, u0).sum())
        best += float(np.where(b, u1, u0).sum())
        inaction += float(u0.sum())
    denom = best - inaction
    return (observed - inaction) / denom if denom else 0.0


def utility_tables(labels: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Concatenated (u0, u1) over all stays, plus the best and no-alert totals."""
    u0s, u1s = [], []
    best = 0.0
    for lab in labels:
        u0, u1 = row_utilities(lab)
        b = best_predictions(lab).astype(bool)
        best += float(np.where(b, u1, u0).sum())
        u0s.append(u0)
        u1s.append(u1)
    u0a = np.concatenate(u0s) if u0s else np.zeros(0)
    u1a = np.concatenate(u1s) if u1s else np.zeros(0)
    return u0a, u1a, best, float(u0a.sum())


def utility_curve(
    scores: np.ndarray, u0: np.ndarray, u1: np.ndarray, best: float, inaction: float
) -> tuple[np.ndarray, np.ndarray]:
    """Normalized utility of ``scores >= threshold`` for every distinct score (thresholds, utility)."""
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    gain = np.cumsum(u1[order] - u0[order])
    # the last index of each run of equal scores: everything >= that score is positive
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    thresholds = s[last]
    observed = inaction + gain[last]
    denom = best - inaction
    util = (observed - inaction) / denom if denom else np.zeros_like(observed)
    return thresholds, util


def best_threshold(scores: np.ndarray, u0: np.ndarray, u1: np.ndarray, best: float, inaction: float) -> float:
    thresholds, util = utility_curve(scores, u0, u1, best, inaction)
    return float(thresholds[int(np.argmax(util))])


def auroc_auprc(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """AUROC (trapezoid) and AUPRC (piecewise-constant precision) over every distinct score, from
    (0 positives, 0 false alarms) to everything positive: the textbook curve. The challenge's
    compute_auc is the same while every score lies strictly between 0 and 1 (checked on 300 random
    and 3 real cohorts); with a score of exactly 1 it has no starting point, with exactly 0 no end,
    and its figures differ there (y [0, 1], s [0.5, 1.0]: 0.0 against 1.0).

    NaN where a figure is undefined (the challenge's divides by zero there too): AUROC and AUPRC
    without a positive row (no septic stay: the textbook curve reads 0.0, which looks like a model
    that ranks every septic hour last), AUROC without a negative one."""
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp = np.cumsum(y)[last].astype(np.float64)
    fp = np.cumsum(~y)[last].astype(np.float64)
    pos, neg = float(y.sum()), float((~y).sum())
    tp = np.r_[0.0, tp]
    fp = np.r_[0.0, fp]
    tpr = tp / pos if pos else np.ones_like(tp)
    tnr = 1.0 - fp / neg if neg else np.ones_like(fp)
    with np.errstate(invalid="ignore", divide="ignore"):
        ppv = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    auroc = float(np.sum(0.5 * np.diff(tpr) * (tnr[1:] + tnr[:-1]))) if pos and neg else math.nan
    auprc = float(np.sum(np.diff(tpr) * ppv[1:])) if pos else math.nan
    return auroc, auprc
