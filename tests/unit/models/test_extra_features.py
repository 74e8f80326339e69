"""Candidate feature blocks (models.train.extra_features): what they compute, and causally."""

from __future__ import annotations

import numpy as np

from vigil.models.standardize import standardize
from vigil.models.stepping import stay_inputs
from vigil.models.train.extra_features import (
    DECAY_NAMES,
    REL_NAMES,
    SIG_NAMES,
    decayed_labs,
    levy_areas,
    relative,
)
from vigil.schemas.codes import DYNAMIC_CODES


def _stay(hours: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.normal(90, 15, (hours, len(DYNAMIC_CODES))).astype(np.float32)
    m[rng.random(m.shape) < 0.5] = np.nan
    return m


def test_levy_area_is_the_signed_area_closed_by_the_chord() -> None:
    m = _stay(30)
    m[:, DYNAMIC_CODES.index("Resp")] = np.random.default_rng(2).normal(20, 5, 30)
    inputs = stay_inputs(m, {"Age": 60.0, "Gender": 1.0})
    got = dict(zip(SIG_NAMES, levy_areas(inputs.rows, inputs.series, np.array([29]))[0], strict=True))
    hr = np.nan_to_num(standardize(inputs.series.last_v)[:, DYNAMIC_CODES.index("HR")], nan=0.0)[-12:]
    resp = np.nan_to_num(standardize(inputs.series.last_v)[:, DYNAMIC_CODES.index("Resp")], nan=0.0)[-12:]
    x, y = np.r_[hr, hr[0]], np.r_[resp, resp[0]]  # the polygon: the path, then back to its start
    shoelace = 0.5 * np.sum(x[:-1] * y[1:] - x[1:] * y[:-1])
    assert np.isclose(got["levy_HR_Resp_12h"], shoelace, atol=1e-5)
    assert not np.isclose(shoelace, 0.0)


def test_blocks_are_causal() -> None:
    m = _stay(40, seed=1)
    whole = stay_inputs(m, None)
    for fn, n in ((levy_areas, len(SIG_NAMES)), (relative, len(REL_NAMES)), (decayed_labs, len(DECAY_NAMES))):
        full = fn(whole.rows, whole.series, np.arange(40))
        assert full.shape == (40, n)
        for t in (0, 7, 30):
            part = stay_inputs(m[: t + 1], None)
            np.testing.assert_array_equal(fn(part.rows, part.series, np.array([t]))[0], full[t])


def test_a_lab_value_fades_with_its_age_and_an_undrawn_lab_sits_at_the_centre() -> None:
    m = np.full((50, len(DYNAMIC_CODES)), np.nan, np.float32)
    m[:, DYNAMIC_CODES.index("HR")] = 90.0
    m[2, DYNAMIC_CODES.index("Lactate")] = 6.0  # drawn once, at hour 2
    inputs = stay_inputs(m, None)
    got = decayed_labs(inputs.rows, inputs.series, np.array([2, 26, 49]))
    lac = DECAY_NAMES.index("Lactate_z_decay24h")
    z = float(standardize(m[2:3])[0, DYNAMIC_CODES.index("Lactate")])
    assert z > 1.0
    np.testing.assert_allclose(got[:, lac], [z, z * np.exp(-1.0), z * np.exp(-47 / 24)], rtol=1e-5)
    np.testing.assert_allclose(got[:, -1], [z - 1.0, (z - 1.0) * np.exp(-1.0), (z - 1.0) * np.exp(-47 / 24)], rtol=1e-5)
    assert not got[:, DECAY_NAMES.index("WBC_z_decay24h")].any()
