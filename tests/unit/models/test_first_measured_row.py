"""Hour 0 as a hospital feed shows a stay (``models.hour_zero``, ``train.data.from_first_measurement``):
from its first measured row on, with its labels and rule scores, as the stream's window counts."""

from __future__ import annotations

import numpy as np

from vigil.models.hour_zero import first_measured_row
from vigil.models.train import data
from vigil.models.train.data import Cohort
from vigil.schemas.codes import DYNAMIC_CODES

V = len(DYNAMIC_CODES)


def _stay(empty_first: int, measured: int) -> np.ndarray:
    m = np.full((empty_first + measured, V), np.nan, np.float32)
    m[empty_first:, 0] = 80.0 + np.arange(measured)
    return m


def test_the_first_measured_row_is_the_first_with_any_value() -> None:
    assert first_measured_row(_stay(0, 3)) == 0
    assert first_measured_row(_stay(2, 3)) == 2
    m = _stay(3, 2)
    m[1, V - 1] = 150.0  # one lab, another variable, in an earlier row
    assert first_measured_row(m) == 1
    assert first_measured_row(np.full((4, V), np.nan, np.float32)) == 4


def test_each_stay_starts_at_its_first_measurement_with_its_labels_and_rules() -> None:
    stays = [_stay(1, 3), _stay(0, 2), np.full((2, V), np.nan, np.float32), _stay(2, 2)]
    labels = [np.array([1, 1, 1, 1]), np.array([0, 0]), np.array([0, 0]), np.array([0, 0, 0, 1])]
    matrix = np.concatenate(stays)
    n = len(stays)
    c = Cohort(
        matrix,
        np.concatenate(labels).astype(np.int8),
        np.array([len(s) for s in stays]),
        np.array([50.0, 60.0, 70.0, 80.0], np.float32),
        np.array([0.0, 1.0, 0.0, 1.0], np.float32),
        np.array(["a", "b", "c", "d"]),
        {"news2": np.arange(len(matrix), dtype=np.int8)},
        np.array([1, 2, 1, 2], np.int8),
    )
    t, left_out = data.from_first_measurement(c)
    assert left_out == {
        "stays_without_measurement": 1,
        "stays_trimmed": 2,
        "hours_left_out": 5,
        "septic_hours_left_out": 1,
    }
    assert t.names.tolist() == ["a", "b", "d"] and t.lengths.tolist() == [3, 2, 2]
    assert t.age.tolist() == [50.0, 60.0, 80.0] and t.unit is not None and t.unit.tolist() == [1, 2, 2]
    assert t.labels.tolist() == [1, 1, 1, 0, 0, 0, 1]
    assert t.rules["news2"].tolist() == [1, 2, 3, 4, 5, 10, 11]
    for p in range(n - 1):
        m, _, _ = t.stay(p)
        assert not np.isnan(m[0]).all()  # hour 0 holds a measurement: icu_hours counts from it
    assert t.matrix[0, 0] == 80.0 and t.matrix[-1, 0] == 81.0
