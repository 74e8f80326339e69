"""A discharge entered in error, cancelled (models.stays.resume): the stay comes back with its
history, whatever the next stay recorded since folded in. Pure."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.models.test_alerting import POLICY, score
from tests.unit.models.test_stays import T0, leaves, stay, vital
from vigil.models.alerting import PatientAlertState, needs_timer, on_ack, on_resume, on_score
from vigil.models.stays import (
    HeldStay,
    Resumed,
    discharge,
    fold,
    holdable_carry,
    is_cancel,
    keep_late,
    needs_held,
    next_stay,
    resume,
    stay_of,
    stay_rejection,
)
from vigil.models.stepping import StayCarry, _replays
from vigil.models.window import PatientWindow
from vigil.schemas.alerts import AlertAck
from vigil.schemas.deadletter import Rejected
from vigil.schemas.events import PatientEvent
from vigil.schemas.normalize import normalize_event
from vigil.schemas.stays import StayEnded, StayRecords, StayResumed, parse_stay_record

NOW = T0 + timedelta(days=2)
CARRY = StayCarry(boundary=0, closed=3)


def cancels(hours: float, encounter: str | None = "enc-1", ward: str | None = None) -> PatientEvent:
    return leaves(hours, encounter, ward, code="cancel_discharge")


def ended(hours: int = 5, at: float = 5.5, encounter: str | None = "enc-1") -> tuple[PatientWindow, HeldStay]:
    """A stay of ``hours`` hours, discharged at ``at``: the tombstone and what is held."""
    going = stay(hours)
    end = discharge(going, PatientAlertState(patient_id="p1"), leaves(at, encounter), NOW, carry=CARRY)
    return end.window, end.held


def resumed(outcome: Resumed | Rejected) -> Resumed:
    assert isinstance(outcome, Resumed), outcome
    return outcome


def test_a_cancel_is_an_encounter_event_that_normalizes_and_never_a_measurement() -> None:
    event = cancels(6)
    assert is_cancel(event) and not is_cancel(leaves(6)) and not is_cancel(vital(6))
    assert normalize_event(event, NOW) == event.model_copy(update={"unit": "1"})
    with pytest.raises(ValueError, match="models.stays"):
        stay(2).apply(event)


def test_a_discharge_holds_the_stay_as_it_was_with_its_end_and_carry() -> None:
    going = stay(5)
    tombstone, held = ended()
    assert held.window.rows == going.rows and held.window.anchor_s == going.anchor_s
    assert held.window.ended_s == tombstone.ended_s and held.window.ended_encounter == "enc-1"
    assert held.carry == CARRY
    assert PatientWindow.from_bytes(held.window.to_bytes()) == held.window  # as Redis keeps it


def test_a_cancel_right_after_the_discharge_gives_the_stay_back_as_it_was() -> None:
    going = stay(5)
    tombstone, held = ended()
    tombstone.advance(0, 57)
    back = resumed(resume(tombstone, held, cancels(6), NOW))
    assert back.window.rows == going.rows and back.window.anchor_s == going.anchor_s
    assert back.window.last_hour == going.last_hour == 4
    assert back.window.ended_s is None and back.window.ended_encounter is None
    assert back.window.position == (0, 57)  # the stream's position, not the held one
    assert back.carry == CARRY
    assert stay_of(back.window, vital(6.5)) == "current"  # the next vital is this stay's hour 6
    record = back.record
    assert (record.record, record.patient_id, record.encounter, record.hours, record.folded_hours) == (
        "stay_resumed",
        "p1",
        "enc-1",
        5,
        0,
    )
    assert record.cancelled_end == T0 + timedelta(hours=5.5) and record.cancelled_at == T0 + timedelta(hours=6)


def test_a_cancel_after_the_next_stay_began_folds_its_hours_back_in() -> None:
    tombstone, held = ended()
    later = next_stay(tombstone)
    for h in (6.25, 7.25, 8.5):
        event = vital(h, encounter="enc-1", value=100 + h)
        assert stay_of(later, event) == "current"
        later.apply(event)
    later.ward = "ICU-B"
    assert later.last_hour == 2  # scored as a new stay, from its own hour 0
    back = resumed(resume(later, held, cancels(9), NOW))
    assert back.window.last_hour == 8 and back.window.ward == "ICU-B"
    assert back.window.rows[6][0] == (106.25, 900) and back.window.rows[8][0] == (108.5, 1800)
    assert back.window.after_s is None  # the stay before the resumed one: none
    assert back.record.hours == 9 and back.record.folded_hours == 3
    # the rows that folded in are new to the carry: the stepping core scores them from it
    assert back.window.changed_from == 6


def test_a_cancel_with_no_ended_stay_is_refused() -> None:
    tombstone, held = ended()
    refused = resume(stay(5), None, cancels(6), NOW)
    assert isinstance(refused, Rejected) and refused.reason == "unknown_stay" and "p1" not in refused.detail
    # the stay is open, not the one after the held end (a twin cancel after the resume)
    back = resumed(resume(tombstone, held, cancels(6), NOW))
    again = resume(back.window, held, cancels(6), NOW)
    assert isinstance(again, Rejected) and again.reason == "unknown_stay"
    # the held stay is not the last one discharged (held keys lost or overwritten)
    other_end = PatientWindow(ended_s=tombstone.ended_s + 3600)  # type: ignore[operator]
    assert resume(other_end, held, cancels(8), NOW).reason == "unknown_stay"  # type: ignore[union-attr]


def test_a_cancelled_transfer_that_ended_no_stay_is_told_apart_from_an_unknown_stay() -> None:
    """An ADT^A12 without PV1-6 may cancel a move between ICUs: the stay goes on, nothing is held."""
    tombstone, held = ended()
    undo = cancels(6).model_copy(update={"code": "cancel_transfer"})
    refused = resume(stay(5), None, undo, NOW)
    assert isinstance(refused, Rejected) and refused.reason == "no_open_stay" and "p1" not in refused.detail
    assert resume(PatientWindow(), None, undo, NOW).reason == "no_open_stay"  # type: ignore[union-attr]
    back = resumed(resume(tombstone, held, undo, NOW))  # the stay a transfer out ended: resumed
    assert back.record.cancelled_at == undo.observed_at and back.record.cancelled_by == "cancel_transfer"
    other_end = PatientWindow(ended_s=tombstone.ended_s + 3600)  # type: ignore[operator]
    assert resume(other_end, held, undo, NOW).reason == "unknown_stay"  # type: ignore[union-attr]


def test_a_cancel_naming_another_encounter_is_not_this_discharges() -> None:
    tombstone, held = ended()
    refused = resume(tombstone, held, cancels(6, encounter="ed-visit-7"), NOW)
    assert isinstance(refused, Rejected) and refused.reason == "other_encounter"
    assert isinstance(resume(tombstone, held, cancels(6, encounter=None), NOW), Resumed)  # no encounter: the last


def test_fold_is_a_no_op_for_an_empty_window() -> None:
    into = stay(3)
    before = into.to_bytes()
    assert fold(into, PatientWindow()) == 0 and into.to_bytes() == before


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 40 * 3600), st.sampled_from(["HR", "Resp", "O2Sat", "MAP"]), st.integers(60, 110)),
        min_size=1,
        max_size=40,
    ),
    st.lists(
        st.tuples(st.integers(1, 46 * 3600), st.sampled_from(["HR", "Resp", "O2Sat", "MAP"]), st.integers(60, 110)),
        min_size=0,
        max_size=40,
    ),
    st.integers(0, 3 * 3600),
)
def test_a_cancelled_discharge_leaves_the_window_the_stay_would_have_had_without_it(
    before: list[tuple[int, str, int]], after: list[tuple[int, str, int]], gap: int
) -> None:
    """Events of one stay, a discharge among them, the events after it (scored as a next stay), then
    the cancel: the window equals the one that applied every event to one stay."""

    def event(second: int, code: str, value: int) -> PatientEvent:
        return PatientEvent(
            patient_id="p1",
            observed_at=T0 + timedelta(seconds=second),
            kind="vital",
            code=code,
            value=value,
            unit="1",
        )

    first = [event(*e) for e in sorted(before)]
    going = PatientWindow()
    for e in first:
        going.apply(e)
    newest = max(s for s, _, _ in before)
    leave_at = T0 + timedelta(seconds=newest + gap)
    departure = leaves(0).model_copy(update={"observed_at": leave_at})
    end = discharge(going, PatientAlertState(patient_id="p1"), departure, NOW)
    after_end = [event(newest + gap + s, c, v) for s, c, v in sorted(after)]
    window = end.window
    for e in after_end:
        if stay_of(window, e) == "new":
            window = next_stay(window)
        assert stay_of(window, e) == "current"
        window.apply(e)
    back = resumed(resume(window, end.held, cancels(0).model_copy(update={"observed_at": NOW}), NOW))

    whole = PatientWindow()
    for e in first + after_end:
        whole.apply(e)
    assert back.window.anchor_s == whole.anchor_s and back.window.last_hour == whole.last_hour
    assert back.window.rows == whole.rows and back.window.static == whole.static
    assert back.record.folded_hours == len(window.rows)


def test_the_stays_topic_holds_two_records_told_apart_by_record() -> None:
    tombstone, held = ended()
    back = resumed(resume(tombstone, held, cancels(6), NOW))
    assert parse_stay_record(back.record.model_dump_json()) == back.record
    end = discharge(stay(3), PatientAlertState(patient_id="p1"), leaves(3.5), NOW).record
    assert isinstance(parse_stay_record(end.model_dump_json()), StayEnded)
    # a version 1 record has no ``record``: a stay's end
    v1 = end.model_dump(mode="json")
    del v1["record"]
    v1["schema_version"] = 1
    assert parse_stay_record(json.dumps(v1)) == end.model_copy(update={"schema_version": 1})
    with pytest.raises(ValueError, match="unknown vigil.stays record"):
        parse_stay_record('{"record": "stay_paused", "patient_id": "p1"}')
    with pytest.raises(ValueError):
        parse_stay_record("[1, 2]")
    schema = StayRecords.model_json_schema()
    assert {"StayEnded", "StayResumed"} <= set(schema["$defs"])
    assert StayResumed.model_fields["record"].default == "stay_resumed"


def test_resumed_record_times_are_utc() -> None:
    tombstone, held = ended()
    record = resumed(resume(tombstone, held, cancels(6), NOW)).record
    assert record.cancelled_end.tzinfo is not None and record.cancelled_end == datetime.fromtimestamp(
        tombstone.ended_s or 0, tz=UTC
    )


def test_the_carry_held_is_the_one_that_still_fits_the_window() -> None:
    going = stay(5)
    going.changed_from = None  # as loaded: the batch applied nothing yet
    anchor = going.anchor_s
    assert holdable_carry(going, CARRY, anchor) is CARRY
    assert holdable_carry(going, None, anchor) is None
    earlier = stay(5)
    earlier.apply(vital(-2.5))  # a lab from before hour 0 in the discharge's batch: hour 0 moved
    assert earlier.anchor_s != anchor and holdable_carry(earlier, CARRY, anchor) is None
    changed = stay(5)
    changed.changed_from = None
    changed.apply(vital(2.5, value=120))  # an hour the carry had closed changed
    stepped = replace(CARRY, h_boundary=np.zeros(32, np.float32), h_closed=np.ones(32, np.float32))
    rewound = holdable_carry(changed, stepped, anchor)
    # kept, with its aggregates and boundary state, but stepped again from h_boundary (exact)
    assert rewound is not None and rewound.h_closed is None and rewound.h_boundary is stepped.h_boundary
    assert (rewound.boundary, rewound.closed) == (0, 3) and _replays(rewound, None) and not _replays(stepped, None)
    changed.changed_from = 4  # only the open hour: the carry follows as it is
    assert holdable_carry(changed, CARRY, anchor) is CARRY
    long = stay(5)
    long.changed_from = None
    long.apply(vital(60.5))  # rows left the window in this batch: held with it, so the carry still fits
    assert long.evicted and holdable_carry(long, CARRY, anchor) is CARRY


def test_a_late_result_of_the_ended_stay_is_kept_for_a_cancel() -> None:
    tombstone, held = ended()
    lab = vital(3.25, code="Lactate", value=4.2)
    assert stay_of(tombstone, lab) == "ended"
    kept = keep_late(tombstone, held, lab)
    assert kept is not None and kept.window.rows[3] != held.window.rows[3]
    # hour 3 was closed in the carry: kept, stepped again from its boundary on a resume
    assert kept.carry is not None and kept.carry.h_closed is None and kept.carry.closed == 3
    assert kept.window.evicted == {} and kept.window.changed_from is None
    back = resumed(resume(tombstone, kept, cancels(6), NOW))
    assert back.window.current_values(at_hour=3)["Lactate"] == pytest.approx(4.2)
    assert keep_late(tombstone, kept, lab) is None  # the same again: nothing new
    assert keep_late(tombstone, None, lab) is None
    assert keep_late(stay(5), held, lab) is None  # not an ended stay
    open_hour = keep_late(tombstone, HeldStay(held.window, StayCarry(boundary=0, closed=2)), vital(4.5))
    assert open_hour is not None and open_hour.carry is not None  # after the carry's closed hours
    before = keep_late(tombstone, held, vital(-1.5))  # before hour 0: the held window re-anchors
    assert before is not None and before.carry is None and before.window.anchor_s != held.window.anchor_s


def test_a_discharge_sent_again_or_an_earlier_stays_result_never_joins_the_held_stay() -> None:
    tombstone, held = ended()
    assert stay_of(tombstone, leaves(5.5)) == "ended"
    assert keep_late(tombstone, held, leaves(5.5)) is None  # refused as a duplicate, never applied
    # the held stay began after an earlier stay's end: that stay's late lab is not the held stay's
    second = next_stay(tombstone)
    for h in (7.25, 8.25):
        second.apply(vital(h))
    end = discharge(second, PatientAlertState(patient_id="p1"), leaves(8.75), NOW, carry=CARRY)
    earlier_lab = vital(3.2, code="Lactate", value=5.0)
    assert stay_of(end.window, earlier_lab) == "ended"
    assert keep_late(end.window, end.held, earlier_lab) is None
    assert keep_late(end.window, end.held, vital(7.5, code="Lactate", value=2.0)) is not None


def test_a_cancel_does_not_fold_a_readmission_under_another_visit() -> None:
    tombstone, held = ended()
    later = next_stay(tombstone)
    later.apply(vital(50, encounter="enc-2"))
    later.encounter = "enc-2"
    refused = resume(later, held, cancels(51, encounter=None), NOW)
    assert isinstance(refused, Rejected) and refused.reason == "other_encounter" and "next stay" in refused.detail


def test_the_cancelled_discharge_sent_again_is_a_duplicate_a_later_one_ends_the_stay() -> None:
    tombstone, held = ended()
    back = resumed(resume(tombstone, held, cancels(6), NOW))
    discharged = int(leaves(5.5).observed_at.timestamp())  # the A03's own time (StayKeys.discharged_s)
    again = leaves(5.5)
    assert stay_of(back.window, again) == "current"  # without it, a second end
    assert stay_of(back.window, again, discharged) == "cancelled"
    refused = stay_rejection(back.window, again, "cancelled")
    assert refused.reason == "duplicate" and "ADT^A13" in refused.detail
    assert stay_of(back.window, leaves(7), discharged) == "current"  # the corrected A03, later
    assert stay_of(back.window, leaves(4.5), discharged) == "current"  # or earlier (the real time)
    twin = resume(back.window, None, cancels(6), NOW, discharged)  # the A13 sent again
    assert isinstance(twin, Rejected) and twin.reason == "duplicate"
    stranger = resume(stay(3), None, cancels(6), NOW, None)
    assert isinstance(stranger, Rejected) and stranger.reason == "unknown_stay"


def test_what_needs_the_held_stay() -> None:
    tombstone, _ = ended()
    assert needs_held(stay(3), leaves(3)) and needs_held(stay(3), cancels(3))
    assert not needs_held(stay(3), vital(2.5))
    assert needs_held(tombstone, vital(4.5)) and not needs_held(tombstone, vital(6.5))
    assert needs_held(next_stay(tombstone), vital(5.25))


def test_the_alert_a_resumed_stay_opens_again_is_a_new_alert_not_the_resolved_one() -> None:
    """The resumed stay's first score is the stay's last one again (same hour, same newest
    observation): the alert it opens must not reuse an id consumers saw resolved at a discharge, also
    after a second wrong discharge and cancel (ids would alternate with a one-step memory)."""
    ill = score(2, 7, "high")
    alert = PatientAlertState()
    seen: list[str] = []
    for cancel in ("", "cancel-1", "cancel-2"):
        alert.resumed_by = cancel or None  # what the scoring step sets on a resume
        (opened,) = on_score(alert, ill, POLICY)
        seen.append(opened.alert_id)
        (resolved,) = discharge(stay(3), alert, leaves(3.5), NOW).alerts
        assert resolved.alert_id == opened.alert_id and alert.resumed_by is None  # the lifecycle afresh
    assert len(set(seen)) == 3
    # a redelivered batch: the state as saved before it (one alert opened), the same salt, the same id
    again = PatientAlertState(resumed_by="cancel-1", alerts_opened=1)
    assert on_score(again, ill, POLICY)[0].alert_id == seen[1]
    assert PatientAlertState.from_bytes(again.to_bytes()) == again  # the new field round-trips
    assert PatientAlertState.from_bytes(b'{"patient_id": "p1"}').resumed_by is None  # older state


def acked(severity: str = "high", snooze_min: int | None = None) -> tuple[PatientAlertState, str]:
    """A lifecycle whose alert (NEWS2 at ``severity``) ann acknowledged (or snoozed), and its id."""
    alert = PatientAlertState()
    (opened,) = on_score(alert, score(2, 7 if severity == "high" else 5, severity), POLICY)
    action = "snooze" if snooze_min else "acknowledge"
    ack = AlertAck(
        alert_id=opened.alert_id,
        patient_id="p1",
        action=action,
        by="ann",
        at=NOW,
        snooze_min=snooze_min,
        note="seen, fluids running" if snooze_min else None,
    )
    assert on_ack(alert, ack)
    return alert, opened.alert_id


@pytest.mark.parametrize("snooze_min", [None, 30])
def test_an_acknowledged_alert_a_cancelled_discharge_resolved_comes_back_acknowledged(snooze_min) -> None:
    """A discharge entered in error resolved an alert the team had answered: the resumed stay's alert
    (a new id) opens acknowledged by the same clinician, snoozed as it was; nobody is paged again."""
    alert, first = acked(snooze_min=snooze_min)
    (resolved,) = discharge(stay(3), alert, leaves(3.5), NOW).alerts
    assert resolved.alert_id == first and alert.active is None and alert.discharged_ack is not None
    on_resume(alert, "cancel-1")
    (back,) = on_score(alert, score(2, 7, "high"), POLICY)
    assert back.state == "acknowledged" and back.by == "ann" and back.alert_id != first
    assert back.reason.startswith(f"acknowledged by ann before the discharge that was cancelled (alert #{first[:8]})")
    assert (back.snoozed_until is not None) == bool(snooze_min) and alert.resumed_ack is None
    assert needs_timer(alert) == bool(snooze_min)  # a snooze still ends; an acknowledgement does not escalate
    assert on_score(alert, score(3, 7, "high"), POLICY) == []  # and goes on as any acknowledged alert
    assert PatientAlertState.from_bytes(alert.to_bytes()) == alert


def test_a_resumed_stay_pages_when_the_alert_was_not_answered_or_the_patient_is_worse() -> None:
    unanswered = PatientAlertState()
    on_score(unanswered, score(2, 7, "high"), POLICY)
    discharge(stay(3), unanswered, leaves(3.5), NOW)
    assert unanswered.discharged_ack is None
    on_resume(unanswered, "cancel-1")
    assert [a.state for a in on_score(unanswered, score(2, 7, "high"), POLICY)] == ["open"]

    worse, _ = acked("medium")  # answered at medium; high now
    discharge(stay(3), worse, leaves(3.5), NOW)
    on_resume(worse, "cancel-1")
    (back,) = on_score(worse, score(2, 7, "high"), POLICY)
    assert back.state == "open" and back.severity == "high"

    settled, _ = acked()  # the resumed stay's first score is calm: the acknowledgement goes with it
    discharge(stay(3), settled, leaves(3.5), NOW)
    on_resume(settled, "cancel-1")
    assert on_score(settled, score(3, 1), POLICY) == []
    assert [a.state for a in on_score(settled, score(4, 7, "high"), POLICY)] == ["open"]


def test_the_held_acknowledgement_is_the_last_discharges_and_yields_to_the_next_stays_alert() -> None:
    alert, _ = acked()
    discharge(stay(3), alert, leaves(3.5), NOW)
    # the next stay began and opened its own alert before the cancel: that alert goes on, unchanged
    (own,) = on_score(alert, score(5, 7, "high"), POLICY)
    on_resume(alert, "cancel-1")
    assert alert.resumed_ack is None and alert.discharged_ack is None and alert.active is not None
    assert on_score(alert, score(5, 7, "high"), POLICY) == [] and alert.active.alert_id == own.alert_id
    # a second discharge holds its own stay's acknowledgement (none: the alert was not answered)
    discharge(stay(6), alert, leaves(6.5), NOW)
    assert alert.discharged_ack is None
    assert PatientAlertState.from_bytes(b'{"patient_id": "p1"}').discharged_ack is None  # older state


def test_rows_that_left_the_window_in_the_discharges_batch_are_held_and_folded_on_resume() -> None:
    long = stay(60)
    anchor, carry = long.anchor_s, StayCarry(boundary=11, closed=58)
    long.changed_from = None
    long.apply(vital(60.1))  # the discharge's batch opens hour 60: hour 12 leaves the window
    assert 12 in long.evicted
    kept_carry = holdable_carry(long, carry, anchor)
    end = discharge(long, PatientAlertState(patient_id="p1"), leaves(60.2), NOW, carry=kept_carry)
    assert end.held.carry is carry and 12 in end.held.window.rows and end.held.window.evicted == {}
    back = resumed(resume(end.window, end.held, cancels(61), NOW))
    assert 12 in back.window.evicted and 12 not in back.window.rows  # the stepping core folds it
    assert min(back.window.rows) == 13 and back.carry is carry


def test_a_cancel_from_before_the_discharge_held_is_not_its_cancel() -> None:
    """A03, A13 (resumed), the real A03 later, then the first A13 sent again: it must not bring
    back a patient who has really left."""
    tombstone, held = ended(at=5.5)
    later = int(leaves(5.5).observed_at.timestamp())
    refused = resume(tombstone, held, cancels(5), NOW, discharged_s=later)
    assert isinstance(refused, Rejected) and refused.reason == "stay_ended" and "before the end Vigil" in refused.detail
    assert isinstance(resume(tombstone, held, cancels(5.5), NOW, discharged_s=later), Resumed)  # at it: a cancel
