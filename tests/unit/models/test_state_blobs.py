"""Per-patient state kept in Redis as JSON (alert lifecycle, care clock): validated by pydantic on
read, readable across versions (unknown keys ignored, missing ones defaulted)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from vigil.models.alerting import ActiveAlert, PatientAlertState
from vigil.models.care import CareClock


def test_alert_state_round_trips_and_reads_other_versions() -> None:
    state = PatientAlertState(
        patient_id="p1",
        active=ActiveAlert("a1", "open", "high", "news2_band:high", 3600.0, 1, opened_wall_s=5.0),
        model_latched=True,
        trend=[(1, 7, 0.42), (2, 8, None)],
        score_ids=["s1"],
    )
    assert PatientAlertState.from_bytes(state.to_bytes()) == state
    raw = json.loads(state.to_bytes())
    raw["added_by_a_newer_version"] = 1
    raw["active"]["snoozed_until_s"] = 9.0
    del raw["score_ids"]  # written by an older version
    older_or_newer = PatientAlertState.from_bytes(json.dumps(raw).encode())
    assert older_or_newer.active == state.active and older_or_newer.score_ids == []
    assert older_or_newer.trend == [(1, 7, 0.42), (2, 8, None)]
    assert PatientAlertState.from_bytes(None) == PatientAlertState()


def test_corrupt_alert_state_is_an_error_not_a_silent_reset() -> None:
    with pytest.raises(ValidationError):
        PatientAlertState.from_bytes(b'{"trend": "not a list"}')


def test_care_clock_reads_what_earlier_versions_wrote() -> None:
    written = json.dumps({"time_zero": "2026-01-02T03:04:05+00:00", "digest": "d", "inputs": "i"}).encode()
    clock = CareClock.model_validate_json(written)
    assert clock.time_zero == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) and (clock.digest, clock.inputs) == ("d", "i")
    assert CareClock.model_validate_json(clock.model_dump_json()) == clock


def test_one_list_of_treatments_in_the_window_format_and_the_plan_schema() -> None:
    from typing import get_args

    from vigil.schemas.codes import TREATMENTS
    from vigil.schemas.treatment import TreatmentAction

    assert get_args(TreatmentAction) == tuple(TREATMENTS)
    # the window blob stores a treatment as its index in this order: append only, never reorder
    assert tuple(TREATMENTS)[:9] == (
        "antibiotic",
        "blood_culture",
        "lactate_ordered",
        "crystalloid_ml",
        "vasopressor",
        "oxygen",
        "clinician_review",
        "observation_set",
        "weight_kg",
    )
