"""The latched risk (models.train.latch): a decaying memory of the stay's own earlier scores, causal."""

from __future__ import annotations

import numpy as np
from synthetic import two_unit_stays

from vigil.models.train.latch import decayed_max, latched
from vigil.models.train.shifts import ShiftPredictions


def test_a_peak_decays_hour_by_hour_and_never_crosses_into_the_next_stay() -> None:
    score = np.array([[0.1, 0.5, 0.1, 0.1, 0.6, 0.05, 0.2]])
    stay = np.array([0, 0, 0, 0, 1, 1, 1])
    got = decayed_max(score, stay, 0.8)
    np.testing.assert_allclose(got[0], [0.1, 0.5, 0.4, 0.32, 0.6, 0.48, 0.384], rtol=1e-6)
    assert (got >= score - 1e-7).all()  # never below the score itself


def test_the_latch_is_causal() -> None:
    rng = np.random.default_rng(0)
    score, stay = rng.random((2, 40)), np.repeat([0, 1], 20)
    whole = decayed_max(score, stay, 0.9)
    for t in (3, 19, 25):
        np.testing.assert_array_equal(decayed_max(score[:, : t + 1], stay[: t + 1], 0.9), whole[:, : t + 1])


def test_each_shift_array_is_latched_within_its_own_units_stays() -> None:
    rng = np.random.default_rng(1)
    u, unit, row_unit = two_unit_stays(rng, 30, every=3)
    score = rng.random((1, len(u.labels)))
    pred = ShiftPredictions(score, {1: score}, {"unit1->unit2": score[:, row_unit == 2]}, {1: score[:, row_unit == 1]})
    held = latched(pred, u, unit, 0.8)
    every = decayed_max(score, u.stay_of_row, 0.8)
    np.testing.assert_array_equal(held.oof, every)
    np.testing.assert_array_equal(held.oof_thin[1], every)
    # the unit's rows are whole stays, so latching them alone equals latching everything, then selecting
    np.testing.assert_array_equal(held.other_unit["unit1->unit2"], every[:, row_unit == 2])
    np.testing.assert_array_equal(held.in_unit[1], every[:, row_unit == 1])
