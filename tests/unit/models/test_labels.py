from __future__ import annotations

import numpy as np

from vigil.models.train.labels import LATE_WEIGHT, utility_targets
from vigil.models.utility import row_utilities


def test_weighted_targets_are_the_utility_gain() -> None:
    """sum(pred * (2y - 1) * w) over the hours the utility scores == utility(pred) - utility(no alerts)."""
    rng = np.random.default_rng(0)
    stays = [np.zeros(30, np.int8), np.r_[np.zeros(25), np.ones(20)].astype(np.int8), np.ones(8, np.int8)]
    labels, lengths = np.concatenate(stays), np.array([len(s) for s in stays])
    y, w = utility_targets(labels, lengths)
    pred = rng.random(len(labels)) < 0.5
    o = np.r_[0, np.cumsum(lengths)]
    for p, lab in enumerate(stays):
        u0, u1 = row_utilities(lab)
        rows = slice(o[p], o[p + 1])
        scored = ~((u0 == 0) & (u1 == 0))  # hours after t_sepsis + 3 are not scored
        gain = np.where(pred[rows], u1 - u0, 0.0)[scored].sum()
        assert np.isclose(gain, (pred[rows] * (2 * y[rows] - 1) * w[rows])[scored].sum())


def test_septic_ramp_and_late_hours() -> None:
    lab = np.r_[np.zeros(30), np.ones(30)].astype(np.int8)  # t_sepsis = 36
    y, w = utility_targets(lab, np.array([60]))
    assert not y[:25].any() and np.allclose(w[:24], 0.05) and w[24] == 0  # t_sepsis - 12: no gain yet
    assert y[25:40].all()  # t_sepsis - 11 .. t_sepsis + 3
    assert np.argmax(w[:40]) >= 30  # a miss near onset costs most
    assert y[40:].all() and np.allclose(w[40:], LATE_WEIGHT)
