"""Hour 0 of a window: the first measurement's; never a demographic's, a treatment's or an
assessment's, whatever the order the events arrive in (``models.hour_zero``: as training and
``vigil predict`` count a file's hours since bundle 2.7.0)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import numpy as np

from vigil.infra.replay import Stay, stay_events
from vigil.models.hour_zero import first_measured_row
from vigil.models.window import PatientWindow
from vigil.schemas.codes import DYNAMIC_CODES
from vigil.schemas.events import PatientEvent

DAY = datetime(2025, 3, 1, tzinfo=UTC)


def at(clock: str, code: str, kind: str, value: float = 1.0) -> PatientEvent:
    hours, minutes = map(int, clock.split(":"))
    observed_at = DAY + timedelta(hours=hours, minutes=minutes)
    return PatientEvent(patient_id="p", observed_at=observed_at, kind=kind, code=code, value=value)


ABX = at("07:10", "antibiotic", "treatment")  # in the ED
GCS = at("07:10", "GCS", "assessment", 14)  # in the ED: no .psv column, never in training's rows
AGE = at("09:40", "Age", "demographic", 70)
HR = at("10:30", "HR", "vital", 120)  # the ICU's first vital sign


def applied(*events: PatientEvent) -> PatientWindow:
    w = PatientWindow()
    for event in events:
        w.apply(event)
    return w


def hour_0(w: PatientWindow) -> str:
    return w.hour_start(0).strftime("%H:%M")


def test_a_demographic_never_sets_hour_0_whether_a_treatment_came_before_or_after_it() -> None:
    # a demographic before the first measurement gave hour 0 until bundle 2.7.0 (training counted a
    # file's hours from its first row, where a replay sends Age): a feed's stays were scored an hour
    # lower than vigil predict scored their files
    for order in [(ABX, AGE, HR), (AGE, ABX, HR), (AGE, HR)]:
        w = applied(*order)
        assert hour_0(w) == "10:00" and list(w.rows) == [0] and w.last_hour == 0, order
        assert w.static["Age"] == (70.0, 0)
    assert applied(ABX, AGE, HR).treatments == [("antibiotic", int(ABX.observed_at.timestamp()), 1.0)]  # its own


def test_a_treatment_or_an_assessment_before_the_first_measurement_never_sets_hour_0() -> None:
    for first in (ABX, GCS):
        w = applied(first, HR)
        assert hour_0(w) == "10:00" and list(w.rows) == [0] and w.last_hour == 0, first.code
    w = applied(GCS, HR)
    assert w.static["GCS"] == (14.0, -3)  # charted 3 hours before hour 0
    assert w.current_values(at_hour=0)["GCS"] == 14.0  # still current at hour 0 (within 4 hours)
    assert "GCS" not in w.current_values(at_hour=1, max_age_h=4 - 3)
    back = PatientWindow.from_bytes(w.to_bytes())  # an hour before hour 0 round-trips (i32)
    assert back.static == w.static and back.anchor_s == w.anchor_s and back.to_bytes() == w.to_bytes()


def test_the_order_of_arrival_before_the_first_measurement_never_moves_hour_0() -> None:
    # hour 0 is the measurement's: a demographic or a treatment before or after it changes nothing,
    # nor an assessment before it (one after it, observed before hour 0, is kept before hour 0)
    for events in itertools.permutations([ABX, GCS, AGE, HR]):
        w = applied(*events)
        assert hour_0(w) == "10:00", [e.code for e in events]
        assert list(w.rows) == [0] and w.static["GCS"][1] == -3
        assert w.static["Age"][1] == 0 and len(w.treatments) == 1


def test_a_replayed_stay_starts_at_its_first_measured_row_as_vigil_predict_scores_it() -> None:
    # Age and Gender at the file's first hour, whose row holds no measurement; the first measurement
    # in the file's second hour: the window's rows are the file's from its first measured row
    # (models.hour_zero), whatever came from the ED before
    matrix = np.full((3, len(DYNAMIC_CODES)), np.nan, np.float32)
    matrix[1:, DYNAMIC_CODES.index("HR")] = [88.0, 91.0]
    stay = Stay("p", matrix, {"Age": 64.0, "Gender": 1.0}, None)
    base = DAY + timedelta(hours=9)
    replayed = [event for _, event in stay_events(stay, base)]
    for events in ([*replayed], [ABX, *replayed], [GCS, ABX, *replayed], [replayed[0], ABX, GCS, *replayed[1:]]):
        w = applied(*events)
        assert w.hour_start(0) == base + timedelta(hours=1) and w.last_hour == 1, [e.code for e in events]
        np.testing.assert_array_equal(w.matrix(), matrix[first_measured_row(matrix) :])
        assert {c: w.statics()[c] for c in ("Age", "Gender")} == {"Age": 64.0, "Gender": 1.0}


def test_a_measured_window_keeps_its_anchor() -> None:
    # once the window has rows: a demographic, a treatment or an assessment before hour 0 does not
    # move it (the assessment is kept before hour 0); an earlier measurement re-anchors it (every row
    # shifts, the assessment with them)
    w = applied(HR, AGE, ABX)
    assert hour_0(w) == "10:00" and w.static["Age"] == (70.0, 0)
    w.apply(GCS)
    assert hour_0(w) == "10:00" and list(w.rows) == [0] and w.static["GCS"] == (14.0, -3)
    w.apply(at("06:20", "Temp", "vital", 38.5))
    assert hour_0(w) == "06:00" and sorted(w.rows) == [0, 4] and w.static["GCS"] == (14.0, 1)


def test_two_days_of_assessments_without_a_measurement_still_wait_for_the_first() -> None:
    # past hour 47 a window without rows read as one whose rows had all left it: the models scored a
    # patient never measured (one all-missing row), and the first vital sign fell in hour 51
    from vigil.models.stream_step import step_request

    for first in (AGE, GCS):
        w = applied(first, at("07:10", "GCS", "assessment", 13))
        w.apply(
            PatientEvent(
                patient_id="p",
                observed_at=DAY + timedelta(hours=50, minutes=10),
                kind="assessment",
                code="GCS",
                value=14,
            )
        )
        assert w.awaiting_first_measurement() and step_request(w, None, None) is None, first.code
        w.apply(
            PatientEvent(
                patient_id="p", observed_at=DAY + timedelta(hours=51, minutes=20), kind="vital", code="HR", value=120
            )
        )
        assert list(w.rows) == [0] and w.hour_start(0) == DAY + timedelta(hours=51), first.code
        assert w.static["GCS"] == (14.0, -1) and w.current_values(at_hour=0)["GCS"] == 14.0
