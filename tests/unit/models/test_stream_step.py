"""The stream's step request: which carry a patient's batch is scored from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from vigil.models.stepping import StayCarry
from vigil.models.stream_step import step_request
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
