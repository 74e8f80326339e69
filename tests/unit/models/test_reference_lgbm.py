"""Issue 12's reference LightGBM (an experiment): its features are causal and what they say they are."""

from __future__ import annotations

import numpy as np

from vigil.models.train.reference_lgbm import HABIT_FEATURES, NAMES, stay_features
from vigil.schemas.codes import DYNAMIC_CODES


def _stay(rng: np.random.Generator, hours: int) -> np.ndarray:
    m = rng.normal(80, 10, (hours, len(DYNAMIC_CODES))).astype(np.float32)
    m[rng.random(m.shape) < 0.6] = np.nan
    return m


def test_row_t_depends_on_rows_up_to_t_only() -> None:
    rng = np.random.default_rng(3)
    m = _stay(rng, 40)
    rules = rng.integers(0, 5, (40, 3)).astype(np.float64)
    whole = stay_features(m, 61.0, 1.0, rules)
    assert whole.shape == (40, len(NAMES))
    for t in (0, 1, 5, 13, 39):
        prefix = stay_features(m[: t + 1], 61.0, 1.0, rules[: t + 1])
        np.testing.assert_array_equal(prefix[t], whole[t])


def test_feature_values() -> None:
    m = np.full((30, len(DYNAMIC_CODES)), np.nan, np.float32)
    hr = DYNAMIC_CODES.index("HR")
    m[[2, 10, 20], hr] = [90.0, 120.0, 100.0]
    f = dict(zip(NAMES, stay_features(m, 70.0, 0.0, np.zeros((30, 3)))[25], strict=True))
    assert f["HR_ffill"] == 100.0 and f["HR_hours_since"] == 5.0 and f["HR_count"] == 3.0
    assert np.isclose(f["HR_rate"], 3 / 26) and f["HR_max_stay"] == 120.0 and f["HR_min_stay"] == 90.0
    assert f["HR_mean6h"] == 100.0 and np.isnan(f["HR_sd6h"]) and f["HR_max24h"] == 120.0
    assert f["HR_diff12h"] == -20.0 and f["icu_hours"] == 25.0 and f["Age"] == 70.0
    assert np.isnan(f["Lactate_ffill"]) and "EtCO2_ffill" not in f  # EtCO2 is never measured in set A
    assert 300 <= len(NAMES) <= 340 and "icu_hours" in HABIT_FEATURES
