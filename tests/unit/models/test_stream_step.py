"""The stream's step request: which carry a patient's batch is scored from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from vigil.models.stepping import StayCarry
from vigil.models.stream_step import HourScore, closed_span, closing_hours, first_closings, step_request
from vigil.models.window import PatientWindow
from vigil.schemas.events import PatientEvent

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def hr(hour: int, value: float = 80.0, minute: int = 10) -> PatientEvent:
    return PatientEvent(
        patient_id="p", observed_at=T0 + timedelta(hours=hour, minutes=minute), kind="vital", code="HR", value=value
    )


def window_with(hours: range) -> PatientWindow:
    w = PatientWindow()
    for h in hours:
        w.apply(hr(h))
    return PatientWindow.from_bytes(w.to_bytes())  # as loaded: no transient eviction record


def test_a_new_patient_starts_its_carry_at_admission() -> None:
    w = PatientWindow()
    w.apply(hr(0))
    req = step_request(w, None, None)
    assert req is not None and req.last_hour == 0
    assert (req.carry.boundary, req.carry.closed) == (0, -1)
    assert req.rows.shape[0] == 1 and not np.isnan(req.rows[0]).all()


def test_a_first_batch_of_demographics_and_the_next_hour_starts_at_the_measurement() -> None:
    # as `vigil predict` reads a stay from its first measured row (models.hour_zero; 68 of the 100
    # sample stays' first rows hold no measurement): the carry starts at hour 0 with the measurement,
    # never at an empty hour that only the age gave
    w = PatientWindow()
    w.apply(
        PatientEvent(patient_id="p", observed_at=T0 + timedelta(minutes=30), kind="demographic", code="Age", value=70)
    )
    w.apply(hr(1))  # the same batch
    req = step_request(w, None, None)
    assert req is not None and (req.carry.boundary, req.carry.closed) == (0, -1)
    assert req.rows.shape[0] == 1 and not np.isnan(req.rows[0]).all() and dict(req.static) == {"Age": 70.0}


def test_no_model_scores_an_hour_before_the_first_measurement() -> None:
    # the age and sex (a replay sends them at the file's first hour), or an assessment, alone: training
    # never saw an hour before the first measurement (models.hour_zero), so the models score none
    # (the patient's score carries the rules); the measurement then is hour 0
    for kind, code, value in (("demographic", "Age", 70.0), ("assessment", "GCS", 14.0)):
        w = PatientWindow()
        w.apply(PatientEvent(patient_id="p", observed_at=T0 + timedelta(minutes=30), kind=kind, code=code, value=value))
        assert w.last_hour == 0 and step_request(w, None, None) is None, code
        w.apply(hr(2))
        req = step_request(w, None, w.anchor_s)
        assert req is not None and req.last_hour == 0 and req.rows.shape[0] == 1, code


def test_a_treatment_before_the_first_measurement_does_not_set_hour_0() -> None:
    # antibiotics given in the ED 3 h before the ICU's first vital signs moved every hour by 3
    w = PatientWindow()
    w.apply(
        PatientEvent(patient_id="p", observed_at=T0 - timedelta(hours=3), kind="treatment", code="antibiotic", value=1)
    )
    assert w.observed_span() is not None and step_request(w, None, None) is None  # a stay a discharge can end
    w.apply(hr(0))
    assert w.last_hour == 0 and w.anchor_s == int(T0.timestamp())
    w = PatientWindow()
    w.apply(PatientEvent(patient_id="p", observed_at=T0, kind="treatment", code="weight_kg", value=80))
    w.apply(hr(-50))  # a measurement long before a weight: the stay's first hour, not "older than the window"
    assert w.last_hour == 0 and w.anchor_s == int((T0 - timedelta(hours=50)).timestamp())


def test_no_hour_no_request() -> None:
    w = PatientWindow()
    w.apply(PatientEvent(patient_id="p", observed_at=T0, kind="treatment", code="antibiotic", value=1.0))
    assert step_request(w, None, None) is None


def test_state_without_a_carry_starts_one_at_the_window_start() -> None:
    w = window_with(range(0, 70))  # written before the stream stepped: rows 22..69 kept
    w.apply(hr(70))
    req = step_request(w, None, w.anchor_s)
    assert req is not None and (req.carry.boundary, req.carry.closed) == (22, 21)
    assert req.rows.shape[0] == 70 - 22 + 1


def test_a_carry_that_cannot_belong_to_the_window_is_replaced() -> None:
    w = window_with(range(0, 10))
    w.apply(hr(10))
    ahead = StayCarry(boundary=0, closed=12)  # committed past the window's newest hour
    req = step_request(w, ahead, w.anchor_s)
    assert req is not None and req.carry is not ahead and req.carry.closed == -1
    kept = StayCarry(boundary=0, closed=8)
    req = step_request(w, kept, w.anchor_s)
    assert req is not None and req.carry is kept and req.changed_from == 10


def test_a_reanchored_window_starts_a_fresh_carry() -> None:
    w = window_with(range(0, 5))
    anchor = w.anchor_s
    carry = StayCarry(boundary=0, closed=3)
    w.apply(hr(-2))  # an observation before the first: every hour index moves by 2
    req = step_request(w, carry, anchor)
    assert w.anchor_s != anchor
    assert req is not None and req.carry is not carry and (req.carry.boundary, req.carry.closed) == (0, -1)
    assert req.last_hour == 6


def scored(hours: list[int]) -> list[HourScore]:
    return [HourScore(h, np.zeros(1, np.float32), []) for h in hours]


def test_a_reanchored_window_finalizes_its_hours_again_but_only_the_new_ones_close_first() -> None:
    """vigil_closed_hours_*: each patient-hour once. The fresh carry of a re-anchored window finalizes
    every hour again (their final scores go out again); only the hours before the old hour 0 are new."""
    w = window_with(range(0, 5))
    anchor, carry = w.anchor_s, StayCarry(boundary=0, closed=3)  # hours 0..3 finalized, 4 open
    before = closed_span(anchor, carry)
    w.apply(hr(-2))
    req = step_request(w, carry, anchor)
    assert req is not None
    closed = scored(closing_hours(req.carry, req.last_hour))
    assert [h.hour for h in closed] == [0, 1, 2, 3, 4, 5]  # the old 0..3 are 2..5 now; 4 -> 6, open
    assert [h.hour for h in first_closings(closed, w.anchor_s, before)] == [0, 1]
    assert first_closings(closed, w.anchor_s, None) == closed  # no stored carry: every hour is new


def test_hours_another_window_finalized_are_not_closed_first_again() -> None:
    """A cancelled discharge folds the next stay back: the resumed stay finalizes, from its own last
    closed hour, the discharge's hour (never finalized), then the next stay's hours (finalized by it)."""
    stay_anchor = int(T0.timestamp())
    next_stay = closed_span(stay_anchor + 10 * 3600, StayCarry(boundary=0, closed=2))  # its hours 0..2
    assert next_stay == (stay_anchor + 10 * 3600, stay_anchor + 13 * 3600)
    closed = scored(list(range(8, 15)))  # the resumed stay's hours 8..14
    assert [h.hour for h in first_closings(closed, stay_anchor, next_stay)] == [8, 9, 13, 14]
    assert closed_span(None, StayCarry()) is None and closed_span(stay_anchor, None) is None
