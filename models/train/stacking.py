"""One calibrated risk from the two models: a logistic stacker on their log-odds, fitted on
out-of-fold predictions with the utility weights, then isotonic calibration (scikit-learn) against
the utility target, so the risk reads as a probability of "sepsis onset within 12 h, or septic"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.models.bundle import calibrated_risk, stacked_risk

# isotonic steps are flat: a sliver of the stacked score keeps every hour's ranking (AUROC) intact
RANK_KEEP = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


@dataclass
class Stack:
    coef: np.ndarray  # tree, sequence, bias
    knots_x: np.ndarray
    knots_y: np.ndarray

    def stacked(self, p_tree: np.ndarray, p_seq: np.ndarray) -> np.ndarray:
        return stacked_risk(self.params(), p_tree, p_seq)

    def apply(self, p_tree: np.ndarray, p_seq: np.ndarray) -> np.ndarray:
        """The combined risk; the serving side's ``SteppingBundle.combine`` is the same function of the
        manifest's ``params`` and ``calibration`` (``models.bundle.calibrated_risk``)."""
        return calibrated_risk(self.stacked(p_tree, p_seq), self.knots_x, self.knots_y, RANK_KEEP)

    def params(self) -> dict[str, float]:
        return {"tree": float(self.coef[0]), "sequence": float(self.coef[1]), "bias": float(self.coef[2])}

    def calibration(self) -> dict[str, list[float]]:
        return {"x": self.knots_x.tolist(), "y": self.knots_y.tolist(), "rank_keep": RANK_KEEP}


def fit(
    p_tree: np.ndarray, p_seq: np.ndarray, y: np.ndarray, w: np.ndarray, iters: int = 25, sequence: bool = True
) -> Stack:
    """``sequence=False``: the sequence model's weight is held at 0 (the shipped 2.1 recipe: with it,
    the stacked risk's threshold transferred worse across ICU units, issue 12 shift tests v2)."""
    from sklearn.isotonic import IsotonicRegression

    a = np.stack([_logit(p_tree), _logit(p_seq) if sequence else np.zeros(len(y)), np.ones(len(y))], axis=1)
    coef = np.array([0.5, 0.5 if sequence else 0.0, 0.0])
    for _ in range(iters):  # Newton steps of weighted logistic regression (3 parameters)
        p = 1.0 / (1.0 + np.exp(-(a @ coef)))
        grad = a.T @ (w * (p - y))
        hess = (a * (w * p * (1 - p))[:, None]).T @ a + 1e-6 * np.eye(3)
        coef -= np.linalg.solve(hess, grad)
    stacked = 1.0 / (1.0 + np.exp(-(a @ coef)))
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(stacked, y)
    return Stack(coef, np.asarray(iso.X_thresholds_, float), np.asarray(iso.y_thresholds_, float))


def combiner(scores: np.ndarray, y: np.ndarray, w: np.ndarray):  # type: ignore[no-untyped-def]
    """``shifts.Combiner`` of the 2.0 bundle: the stacker + isotonic fitted on training-side OOF scores
    [2, n] (trees, sequence model), as a function of [2, m] scores."""
    st = fit(scores[0], scores[1], y, w)
    return lambda p: st.apply(p[0], p[1])


def trees_only_combiner(scores: np.ndarray, y: np.ndarray, w: np.ndarray):  # type: ignore[no-untyped-def]
    """``shifts.Combiner`` of the shipped bundle (2.1): the same stacker with the sequence weight at 0."""
    st = fit(scores[0], scores[1], y, w, sequence=False)
    return lambda p: st.apply(p[0], p[1])


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Mean risk vs observed rate of the target in risk-quantile bins (the card's reliability curve)."""
    return [
        {"bin": b, "n": n, "mean_risk": round(risk, 4), "observed": round(seen, 4)}
        for b, n, risk, seen in _bins(y, p, bins)
    ]


def calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """A held-out score's calibration: its mean risk against the observed rate of the target over
    all its hours (calibration in the large), the expected calibration error (the mean over hours of
    |mean risk - observed rate| of each hour's risk-quantile bin) and the reliability curve."""
    curve = _bins(y, p, bins)
    ece = sum(n * abs(risk - seen) for _, n, risk, seen in curve) / max(len(p), 1)
    return {
        "hours": len(p),
        "mean_risk": round(float(p.mean()), 4),
        "observed": round(float(y.mean()), 4),
        "ece": round(ece, 4),
        "reliability": reliability(y, p, bins),
    }


def _bins(y: np.ndarray, p: np.ndarray, bins: int) -> list[tuple[int, int, float, float]]:
    """(bin, hours, mean risk, observed rate) of each non-empty risk-quantile bin."""
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, bins - 1)
    masks = [(b, which == b) for b in range(bins)]
    return [(b, int(m.sum()), float(p[m].mean()), float(y[m].mean())) for b, m in masks if m.any()]
