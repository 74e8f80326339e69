from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.models.train.v1_features import (
    FEATURE_NAMES,
    HABIT_FEATURES,
    N_FEATURES,
    N_SEQUENCE_CHANNELS,
    WINDOW_HOURS,
    batch_window_features,
    sequence_inputs,
    stay_features,
    stay_sequence_inputs,
    window_features,
)
from vigil.schemas.codes import DYNAMIC_CODES

STATIC = {"Age": 67.0, "Gender": 1.0, "Unit1": 1.0, "HospAdmTime": -3.0}


def test_feature_names_shape(stay_matrix: np.ndarray) -> None:
    f = stay_features(stay_matrix, STATIC)
    assert f.shape == (len(stay_matrix), N_FEATURES) == (len(stay_matrix), len(FEATURE_NAMES))
    assert f.dtype == np.float32
    assert len(set(FEATURE_NAMES)) == len(FEATURE_NAMES)
    assert len(HABIT_FEATURES) <= 3
    for banned in ("Unit1", "Unit2", "HospAdmTime", "ICULOS"):
        assert not any(banned in n for n in FEATURE_NAMES)


def test_appending_rows_never_changes_earlier_hours(stay_matrix: np.ndarray) -> None:
    full = stay_features(stay_matrix, STATIC)
    for t in (0, 10, 47, 48, 60):
        prefix = stay_features(stay_matrix[: t + 1], STATIC)
        np.testing.assert_array_equal(prefix, full[: t + 1])


def test_window_equals_offline_row(stay_matrix: np.ndarray) -> None:
    full = stay_features(stay_matrix, STATIC)
    for t in range(len(stay_matrix)):
        w = window_features(stay_matrix[max(0, t - WINDOW_HOURS + 1) : t + 1], STATIC)
        np.testing.assert_array_equal(w, full[t])
    # a longer history is cut to the last 48 rows: rows older than the window are never used
    np.testing.assert_array_equal(window_features(stay_matrix, STATIC), full[-1])


def test_rows_older_than_window_are_ignored(stay_matrix: np.ndarray) -> None:
    changed = stay_matrix.copy()
    changed[:10] = 123.0  # only affects hours <= 9 + 47
    a, b = stay_features(stay_matrix, STATIC), stay_features(changed, STATIC)
    np.testing.assert_array_equal(a[57:], b[57:])
    assert not np.array_equal(a[:57], b[:57], equal_nan=True)


def test_batch_matches_single(stay_matrix: np.ndarray) -> None:
    wins = [stay_matrix[:5], stay_matrix[:70], stay_matrix[20:21]]
    got = batch_window_features(wins, [STATIC] * 3)
    for g, w in zip(got, wins, strict=True):
        np.testing.assert_array_equal(g, window_features(w, STATIC))


def test_float64_input_is_cast_first(stay_matrix: np.ndarray) -> None:
    np.testing.assert_array_equal(
        stay_features(stay_matrix.astype(np.float64), STATIC), stay_features(stay_matrix, STATIC)
    )


def test_sequence_inputs_window_equals_offline(stay_matrix: np.ndarray) -> None:
    full = stay_sequence_inputs(stay_matrix, STATIC)
    assert full.shape == (len(stay_matrix), WINDOW_HOURS, N_SEQUENCE_CHANNELS)
    for t in (0, 5, 47, 70):
        np.testing.assert_array_equal(sequence_inputs(stay_matrix[: t + 1], STATIC), full[t])
    assert not np.isnan(full).any()
    # left padding carries nothing: no availability before the first row
    assert not full[0, :-1, len(DYNAMIC_CODES) : 2 * len(DYNAMIC_CODES)].any()


@settings(max_examples=25, deadline=None)
@given(
    hours=st.integers(1, 70),
    cut=st.integers(0, 69),
    seed=st.integers(0, 1000),
)
def test_causality_property(hours: int, cut: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = rng.normal(80, 10, (hours, len(DYNAMIC_CODES))).astype(np.float32)
    m[rng.random(m.shape) < 0.7] = np.nan
    t = min(cut, hours - 1)
    np.testing.assert_array_equal(stay_features(m[: t + 1], STATIC)[t], stay_features(m, STATIC)[t])


def test_bad_shape_rejected() -> None:
    with pytest.raises(ValueError):
        stay_features(np.zeros((3, 5)), STATIC)
