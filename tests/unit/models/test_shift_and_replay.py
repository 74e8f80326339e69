from __future__ import annotations

import numpy as np
import pytest
from synthetic import synthetic_stay

from vigil.models.alert_replay import AlertReplay
from vigil.models.shift import parse_shift, thin, thin_labs
from vigil.schemas.codes import DYNAMIC_CODES, VITALS

LABS = [i for i, c in enumerate(DYNAMIC_CODES) if c not in VITALS]
VITAL_COLS = [i for i, c in enumerate(DYNAMIC_CODES) if c in VITALS]


def test_thin_labs_drops_whole_lab_draws_and_keeps_vitals() -> None:
    m = synthetic_stay(np.random.default_rng(1), 400)[:, : len(DYNAMIC_CODES)].astype(np.float32)
    thin = thin_labs(m, 0.1, np.random.default_rng(5))
    np.testing.assert_array_equal(thin[:, VITAL_COLS], m[:, VITAL_COLS])
    had = ~np.isnan(m[:, LABS]).all(1)
    kept = ~np.isnan(thin[:, LABS]).all(1)
    assert not (kept & ~had).any()
    assert 0.03 < kept.sum() / had.sum() < 0.2
    # a kept draw is kept whole
    np.testing.assert_array_equal(thin[kept][:, LABS], m[kept][:, LABS])
    np.testing.assert_array_equal(thin, thin_labs(m, 0.1, np.random.default_rng(5)))
    np.testing.assert_array_equal(thin_labs(m, 1.0, np.random.default_rng(0)), m)


def test_thin_vitals_drops_whole_chartings_and_keeps_labs() -> None:
    m = synthetic_stay(np.random.default_rng(2), 400)[:, : len(DYNAMIC_CODES)].astype(np.float32)
    sparse = thin(m, "vitals", 0.5, np.random.default_rng(7))
    np.testing.assert_array_equal(sparse[:, LABS], m[:, LABS])
    had = ~np.isnan(m[:, VITAL_COLS]).all(1)
    kept = ~np.isnan(sparse[:, VITAL_COLS]).all(1)
    assert not (kept & ~had).any()
    assert 0.4 < kept.sum() / had.sum() < 0.6
    np.testing.assert_array_equal(sparse[kept][:, VITAL_COLS], m[kept][:, VITAL_COLS])
    # the labs kind is thin_labs, draw for draw (cached thinned-labs features stay valid)
    np.testing.assert_array_equal(
        thin(m, "labs", 0.1, np.random.default_rng(5)), thin_labs(m, 0.1, np.random.default_rng(5))
    )
    with pytest.raises(ValueError, match="unknown kind"):
        thin(m, "notes", 0.5, np.random.default_rng(0))


def test_parse_shift() -> None:
    assert parse_shift("labs=0.1") == ("labs", 0.1)
    assert parse_shift("vitals=0.5") == ("vitals", 0.5)
    for bad in ("labs=0", "labs=1.5", "vitals=0", "vitals=", "bp=0.5", "labs", "labs=x", "vitals=nan"):
        with pytest.raises(ValueError):
            parse_shift(bad)


def test_alert_replay_counts_pages_and_lead_time() -> None:
    replay = AlertReplay()
    hours = 40
    labels = np.zeros(hours, np.int8)
    labels[20:] = 1  # onset (t_sepsis) = 26
    prob = np.full(hours, 0.01)
    prob[15:] = 0.5  # paged at hour 15: 11 h before onset
    news2 = np.zeros(hours, int)
    replay.add(labels, prob, (prob >= 0.3).astype(np.int8), news2, np.zeros(hours, bool))
    quiet = np.zeros(hours)
    replay.add(np.zeros(hours, np.int8), np.full(hours, 0.01), np.zeros(hours, np.int8), quiet, quiet.astype(bool))
    out = replay.summary()
    assert out["septic_stays_paged_before_onset"] == 1.0
    assert out["median_lead_h"] == 11.0
    assert out["pages_per_patient_day"] == pytest.approx(24 * 1 / 80)
    assert out["model_threshold"] == pytest.approx(0.5)


def test_alert_replay_exits_below_the_threshold_the_labels_were_set_at() -> None:
    # served threshold 0.30: no hour falls on it, so the lowest probability labelled positive is 0.5
    hours = 40
    prob = np.full(hours, 0.01)
    prob[5], prob[6:20], prob[20] = 0.5, 0.27, 0.5  # 0.27: below 0.30, above its exit (0.30 x 0.8)
    quiet = np.zeros(hours, int)

    def replayed(threshold: float | None) -> dict[str, float | int | str | None]:
        replay = AlertReplay()
        replay.add(np.zeros(hours, np.int8), prob, (prob >= 0.30).astype(np.int8), quiet, quiet.astype(bool))
        return replay.summary(threshold)

    given, inferred = replayed(0.30), replayed(None)
    assert given["model_threshold"] == 0.30 and given["model_threshold_from"] == "given"
    assert inferred["model_threshold"] == 0.5 and inferred["model_threshold_from"] != "given"
    # at 0.30 the alert stays open through the 0.27 hours: one page; read back at 0.5 it closes
    # below 0.4 and pages again at hour 20, after the suppression window
    assert given["pages_per_patient_day"] == pytest.approx(24 / hours)
    assert inferred["pages_per_patient_day"] == pytest.approx(2 * 24 / hours)
