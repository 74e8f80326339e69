import contextlib
import struct
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.models.window import WINDOW_HOURS, LateEvent, PatientWindow
from vigil.schemas.codes import ASSESSMENTS, DEMOGRAPHICS, DYNAMIC_CODES, TREATMENTS
from vigil.schemas.events import PatientEvent

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def ev(code: str, value: float, hours: float, kind: str = "vital") -> PatientEvent:
    return PatientEvent(patient_id="p", observed_at=T0 + timedelta(hours=hours), kind=kind, code=code, value=value)


def test_hourly_rows_and_latest_value_wins_within_hour() -> None:
    w = PatientWindow()
    w.apply(ev("HR", 80, 0.1))
    w.apply(ev("HR", 95, 0.9))
    w.apply(ev("HR", 70, 0.5))  # arrives late but was observed earlier in the hour
    w.apply(ev("Resp", 22, 2.2))
    m = w.matrix()
    assert m.shape == (3, len(DYNAMIC_CODES))
    hr = DYNAMIC_CODES.index("HR")
    assert m[0, hr] == 95 and np.isnan(m[1, hr]) and w.last_hour == 2


def test_window_is_bounded_and_late_events_are_refused() -> None:
    w = PatientWindow()
    for h in range(100):
        w.apply(ev("HR", 80 + h % 5, h))
    assert len(w.rows) == WINDOW_HOURS
    assert w.matrix().shape[0] == WINDOW_HOURS
    with pytest.raises(LateEvent):
        w.apply(ev("HR", 80, 10))


def test_reapplying_an_event_is_idempotent() -> None:
    w = PatientWindow()
    events = [ev("HR", 80, 0.2), ev("O2Sat", 95, 1.1), ev("Age", 70, 0, kind="demographic")]
    for e in events:
        w.apply(e)
    before = w.to_bytes()
    for e in events:
        w.apply(e)
    assert w.to_bytes() == before


def test_earlier_event_reanchors() -> None:
    w = PatientWindow()
    w.apply(ev("HR", 80, 3.5))
    w.apply(ev("HR", 90, 0.5))
    assert w.last_hour == 3 and w.matrix().shape[0] == 4


def test_current_values_use_recent_hours_only() -> None:
    w = PatientWindow()
    w.apply(ev("Temp", 39.0, 0.5))
    w.apply(ev("HR", 100, 6.5))
    assert "Temp" not in w.current_values() and w.current_values()["HR"] == 100


def test_spo2_scale_2_stands_for_the_stay_while_observations_age() -> None:
    from vigil.models.early_warning import news2, observations_from_row

    w = PatientWindow()
    w.apply(ev("HypercapnicRespFailure", 1, 0.2, kind="assessment"))
    w.apply(ev("SupplementalO2", 1, 0.3, kind="assessment"))
    w.apply(ev("O2Sat", 97, 0.5))
    w.apply(ev("SupplementalO2", 1, 9.3, kind="assessment"))
    w.apply(ev("O2Sat", 97, 9.5))
    current = w.current_values()
    assert current["HypercapnicRespFailure"] == 1 and "HR" not in current
    # scale 2 on oxygen at 97: 3 points, 9 hours after the decision as at the first hour
    assert news2(observations_from_row(current)).parameters["spo2"] == 3
    assert "HypercapnicRespFailure" not in w.current_values(at_hour=-1)  # not before it was charted


def test_treatments_are_kept_in_order_and_bounded() -> None:
    w = PatientWindow()
    for i in range(80):
        w.apply(ev("antibiotic", 1, i * 0.1, kind="treatment"))
    assert len(w.treatments) == 64
    assert [t[1] for t in w.treatments] == sorted(t[1] for t in w.treatments)


def test_covers_tells_a_window_saved_before_a_scores_events() -> None:
    w = PatientWindow()
    assert not w.covers(T0)
    w.apply(ev("HR", 90, 1 / 6))  # 08:10
    assert w.covers(T0 + timedelta(minutes=10, microseconds=500))
    assert not w.covers(T0 + timedelta(minutes=10, seconds=1))
    w.apply(ev("antibiotic", 1, 2 / 3, kind="treatment"))  # 08:40, a treatment, not a row
    assert w.covers(T0 + timedelta(minutes=40))
    assert not w.covers(T0 + timedelta(hours=2))
    assert PatientWindow.from_bytes(w.to_bytes()).covers(T0 + timedelta(minutes=40))


cells = st.tuples(st.integers(0, 200), st.sampled_from(DYNAMIC_CODES[:8]), st.floats(1, 150, width=32))


@settings(max_examples=100, deadline=None)
@given(st.lists(cells, max_size=60), st.floats(18, 100, width=32))
def test_bytes_round_trip(items, age) -> None:
    w = PatientWindow()
    w.apply(ev("Age", age, 0, kind="demographic"))
    for hour, code, value in items:
        with contextlib.suppress(LateEvent):
            w.apply(ev(code, value, hour + 0.25))
    blob = w.to_bytes()
    back = PatientWindow.from_bytes(blob)
    assert back.to_bytes() == blob
    np.testing.assert_array_equal(back.matrix(), w.matrix())
    assert back.statics() == w.statics()
    assert len(blob) < 4096


def layout_bytes(w: PatientWindow) -> bytes:
    """The blob layout documented in models/window.py, field by field: what Redis already holds."""
    statics, treatments = [*DEMOGRAPHICS, *ASSESSMENTS], list(TREATMENTS)
    out = struct.pack("<BqiH", 4, w.anchor_s or 0, w.last_hour, len(w.rows))
    for hour in sorted(w.rows):
        out += struct.pack("<iB", hour, len(w.rows[hour]))
        out += b"".join(struct.pack("<BHf", i, sec, val) for i, (val, sec) in sorted(w.rows[hour].items()))
    out += struct.pack("<B", len(w.static))
    out += b"".join(struct.pack("<Bif", statics.index(c), h, v) for c, (v, h) in sorted(w.static.items()))
    out += struct.pack("<B", len(w.treatments))
    out += b"".join(struct.pack("<Bqf", treatments.index(c), ts, v) for c, ts, v in w.treatments)
    ward = (w.ward or "").encode()
    out += struct.pack("<iq", *(w.position or (-1, -1))) + struct.pack("<B", len(ward)) + ward
    ended_encounter, encounter = (w.ended_encounter or "").encode(), (w.encounter or "").encode()
    out += struct.pack("<q", w.ended_s or 0) + struct.pack("<H", len(ended_encounter)) + ended_encounter
    return out + struct.pack("<H", len(encounter)) + encounter + struct.pack("<q", w.after_s or 0)


treatment_cells = st.tuples(st.integers(0, 47), st.sampled_from(list(TREATMENTS)), st.floats(0, 5000, width=32))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(cells, max_size=60),
    st.floats(18, 100, width=32),
    st.lists(treatment_cells, max_size=5),
    st.one_of(st.none(), st.tuples(st.integers(0, 63), st.integers(0, 2**40))),
    st.one_of(st.none(), st.text(min_size=1, max_size=32)),
    st.one_of(st.none(), st.tuples(st.integers(631152000, 2**40), st.one_of(st.none(), st.text(max_size=64)))),
)
def test_bytes_keep_the_documented_layout(items, age, given_treatments, position, ward, ended) -> None:
    w = PatientWindow()
    w.apply(ev("Age", age, 0, kind="demographic"))
    for hour, code, value in items:
        with contextlib.suppress(LateEvent):
            w.apply(ev(code, value, hour + 0.25))
    for hour, code, value in given_treatments:
        with contextlib.suppress(LateEvent):
            w.apply(ev(code, value, hour + 0.5, kind="treatment"))
    if position is not None:
        w.advance(*position)
    w.ward = ward
    if ended is not None:
        w.ended_s, w.ended_encounter = ended[0], ended[1] or None
        w.encounter, w.after_s = ended[1] or None, ended[0] // 2
    blob = w.to_bytes()
    assert blob == layout_bytes(w)
    back = PatientWindow.from_bytes(blob)
    assert back.to_bytes() == blob
    assert back.ward == ward
    assert (back.ended_s, back.ended_encounter, back.encounter, back.after_s) == (
        w.ended_s,
        w.ended_encounter,
        w.encounter,
        w.after_s,
    )


def test_a_truncated_blob_is_an_error_not_a_shorter_window() -> None:
    w = PatientWindow()
    for hour in range(3):
        w.apply(ev("HR", 80 + hour, hour + 0.5))
        w.apply(ev("SBP", 120, hour + 0.5))
    blob = w.to_bytes()
    for cut in range(1, len(blob)):
        with pytest.raises(struct.error):
            PatientWindow.from_bytes(blob[:cut])


def test_exact_duplicates_are_reported_as_unchanged() -> None:
    w = PatientWindow()
    first = ev("HR", 80, 0.2)
    assert w.apply(first) is True
    assert w.apply(first) is False  # redelivery
    assert w.apply(ev("HR", 80, 0.2)) is False  # a re-published copy (new event id, same content)
    assert w.apply(ev("HR", 81, 0.2)) is True  # a correction
    assert w.apply(ev("HR", 70, 0.1)) is True  # older in the hour: superseded, but not a duplicate
    assert w.apply(ev("antibiotic", 1, 0.5, kind="treatment")) is True
    assert w.apply(ev("antibiotic", 1, 0.5, kind="treatment")) is False


def test_demographics_never_shift_an_anchored_window() -> None:
    """Issue 16: an ``Age`` dated long before the stay moved hour 0 back (hour 17,758,817)."""
    w = PatientWindow()
    w.apply(ev("HR", 80, 5.5))
    anchor = w.anchor_s
    w.apply(ev("Age", 70, -10_000, kind="demographic"))  # ~14 months before, still after the floor
    w.apply(ev("Gender", 1, 20_000, kind="demographic"))  # and long after
    assert w.anchor_s == anchor and w.last_hour == 0
    assert w.statics() == {"Age": 70.0, "Gender": 1.0}
    assert w.matrix().shape[0] == 1


def test_a_window_anchored_by_demographics_alone_yields_to_the_first_measurement() -> None:
    # replay: statics at the file's first hour, whose row may be empty -> hour 0 is the first
    # measurement's (models.hour_zero: as training and vigil predict count since bundle 2.7.0)
    replay = PatientWindow()
    replay.apply(ev("Age", 60, 0.5, kind="demographic"))
    replay.apply(ev("HR", 90, 2.5))
    assert replay.last_hour == 0 and replay.hour_start(0) == T0 + timedelta(hours=2)
    assert replay.static["Age"] == (60.0, 0)
    # an implausibly early demographic: the first measurement decides hour 0
    w = PatientWindow()
    w.apply(ev("Age", 60, -200_000, kind="demographic"))
    w.apply(ev("HR", 90, 2.5))
    assert w.last_hour == 0 and w.hour_start(0) == T0 + timedelta(hours=2)
    assert w.statics() == {"Age": 60.0}


def test_old_assessments_are_late_not_reanchoring() -> None:
    w = PatientWindow()
    w.apply(ev("HR", 80, 100.5))
    with pytest.raises(LateEvent):
        w.apply(ev("GCS", 15, 0.5, kind="assessment"))
    assert w.last_hour == 0
    # within the window, before hour 0: kept at its hour, never moving hour 0 (no .psv column)
    w.apply(ev("GCS", 14, 98.5, kind="assessment"))
    assert w.last_hour == 0 and w.static["GCS"] == (14.0, -2)
    assert w.current_values()["GCS"] == 14.0  # measured 2 h before the newest hour: current for NEWS2
    assert PatientWindow.from_bytes(w.to_bytes()).static["GCS"] == (14.0, -2)


def test_position_tells_a_redelivery_from_a_new_message() -> None:
    w = PatientWindow()
    assert not w.seen(1, 10)
    w.advance(1, 10)
    assert w.seen(1, 10) and w.seen(1, 3) and not w.seen(1, 11) and not w.seen(2, 5)
    w.advance(1, 4)  # an older message never moves the position back
    assert w.position == (1, 10)
    back = PatientWindow.from_bytes(w.to_bytes())
    assert back.position == (1, 10)
    assert PatientWindow.from_bytes(PatientWindow().to_bytes()).position is None


def test_version_one_blobs_still_load() -> None:
    w = PatientWindow()
    w.apply(ev("HR", 80, 0.5))
    v1 = b"\x01" + w.to_bytes()[1:-33]  # a version-1 blob: no position, ward or stay fields at the end
    back = PatientWindow.from_bytes(v1)
    assert back.position is None and back.rows == w.rows


def test_version_two_blobs_load_without_a_ward() -> None:
    w = PatientWindow(ward="ICU-A")
    w.apply(ev("HR", 80, 0.5))
    w.advance(3, 7)
    v2 = b"\x02" + w.to_bytes()[1:-26]  # a version-2 blob: the position last, no ward or stay fields
    back = PatientWindow.from_bytes(v2)
    assert back.position == (3, 7) and back.rows == w.rows and back.ward is None


def test_version_three_blobs_load_as_a_stay_that_goes_on() -> None:
    w = PatientWindow(ward="ICU-A")
    w.apply(ev("HR", 80, 0.5))
    v3 = b"\x03" + w.to_bytes()[1:-20]  # a version-3 blob: the ward last, no stay fields
    back = PatientWindow.from_bytes(v3)
    assert back.ward == "ICU-A" and back.rows == w.rows and back.ended_s is None and back.ended_encounter is None


def test_a_blob_cut_inside_its_ended_encounter_is_refused() -> None:
    w = PatientWindow(ended_s=1_700_000_000, ended_encounter="enc-7")
    with pytest.raises(struct.error):
        PatientWindow.from_bytes(w.to_bytes()[:-12])


def test_a_first_event_with_a_stale_clock_does_not_make_every_hour_a_year_late() -> None:
    from vigil.models.window import MAX_GAP_HOURS

    w = PatientWindow()
    w.apply(ev("Age", 70, 0, kind="demographic"))
    w.apply(ev("HR", 80, -8000))  # a monitor's clock a year behind, on the first event
    w.apply(ev("antibiotic", 1, 10, kind="treatment"))
    assert not w.restarted
    w.apply(ev("HR", 90, 0.5))  # the stay's real first hour
    assert w.restarted and w.last_hour == 0 and w.anchor_s == int(T0.timestamp())
    assert list(w.rows) == [0] and w.static["Age"] == (70.0, 0)
    assert [t[0] for t in w.treatments] == ["antibiotic"]  # the stay's own, at their own times
    w.restarted = False
    w.apply(ev("HR", 85, 0.5 + MAX_GAP_HOURS))  # a week on: the same stay
    assert not w.restarted and w.last_hour == MAX_GAP_HOURS


def test_the_same_age_with_each_result_message_changes_no_hour() -> None:
    """HL7v2 and FHIR feeds send the patient's age and sex with every result message (PID-7, PID-8):
    a demographic is an input of every hour, and each one made the batch re-finalize from hour 0."""
    w = PatientWindow()
    w.apply(ev("Age", 71, 0.5, kind="demographic"))
    w.apply(ev("HR", 80, 0.5))
    w.apply(ev("HR", 82, 3.5))
    w.changed_from = None  # as loaded for the next batch
    assert w.apply(ev("Age", 71, 3.5, kind="demographic")) and w.changed_from is None
    assert w.static["Age"] == (71.0, 3)
    # a second message in the same hour, or the first again (a redelivery): nothing new
    assert not w.apply(ev("Age", 71, 3.7, kind="demographic")) and w.changed_from is None
    assert not w.apply(ev("Age", 71, 0.5, kind="demographic")) and w.static["Age"] == (71.0, 3)
    assert w.apply(ev("Age", 72, 3.6, kind="demographic")) and w.changed_from == -1  # a birthday: every hour
