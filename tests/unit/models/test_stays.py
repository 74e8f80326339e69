"""The end of a stay and the start of the next (models.stays, alerting.on_discharge): pure."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.models.test_alerting import POLICY, score
from vigil.models.alerting import PatientAlertState, on_score
from vigil.models.stays import discharge, end_stay, in_stay, is_discharge, next_stay, stay_of, stay_rejection
from vigil.models.window import LateEvent, PatientWindow
from vigil.schemas.events import PatientEvent
from vigil.schemas.normalize import normalize_event

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def vital(hours: float, encounter: str | None = None, code: str = "HR", value: float = 90.0) -> PatientEvent:
    return PatientEvent(
        patient_id="p1",
        observed_at=T0 + timedelta(hours=hours),
        kind="vital",
        code=code,
        value=value,
        unit="/min",
        encounter=encounter,
    )


def leaves(
    hours: float, encounter: str | None = "enc-1", ward: str | None = "ICU-A", code: str = "discharge"
) -> PatientEvent:
    return PatientEvent(
        patient_id="p1",
        observed_at=T0 + timedelta(hours=hours),
        kind="encounter",
        code=code,
        value=1,
        encounter=encounter,
        ward=ward,
        source="adt",
    )


def stay(hours: int) -> PatientWindow:
    w = PatientWindow(ward="ICU-A")
    for h in range(hours):
        w.apply(vital(h + 0.25))
    w.advance(0, 41)
    return w


def test_a_discharge_is_an_encounter_event_that_normalizes() -> None:
    event = leaves(3)
    assert is_discharge(event) and not is_discharge(vital(1))
    assert normalize_event(event, T0 + timedelta(days=1)) == event.model_copy(update={"unit": "1"})
    wrong = event.model_copy(update={"value": 0.0})
    assert normalize_event(wrong, T0 + timedelta(days=1)).reason == "out_of_range"  # type: ignore[union-attr]
    as_vital = event.model_copy(update={"kind": "vital"})
    assert normalize_event(as_vital, T0 + timedelta(days=1)).reason == "schema"  # type: ignore[union-attr]


def test_a_discharge_never_enters_the_window_as_a_measurement() -> None:
    with pytest.raises(ValueError, match="models.stays"):
        stay(2).apply(leaves(1.5))


def test_the_window_a_discharge_leaves_holds_only_the_position_ward_and_end() -> None:
    ended = end_stay(stay(5), leaves(5.5))
    assert ended.rows == {} and ended.anchor_s is None and ended.last_hour == -1 and ended.static == {}
    assert ended.position == (0, 41) and ended.ward == "ICU-A"
    assert ended.ended_s == int((T0 + timedelta(hours=5.5)).timestamp()) and ended.ended_encounter == "enc-1"
    assert PatientWindow.from_bytes(ended.to_bytes()) == ended


def test_which_stay_an_event_belongs_to() -> None:
    going = stay(5)
    assert stay_of(going, vital(4.5)) == "current"
    ended = end_stay(going, leaves(5.5))
    assert stay_of(ended, vital(5.0)) == "ended"  # a late lab of the stay
    assert stay_of(ended, vital(5.5)) == "ended"  # at the discharge time: the stay's
    # after the end, even naming the ended encounter: the next stay (a discharge entered in error
    # must not leave a patient whose monitors go on sending unscored)
    assert stay_of(ended, vital(9.0, encounter="enc-1")) == "new"
    assert stay_of(ended, vital(9.0)) == "new"  # after it, no encounter: the next stay
    assert stay_of(ended, vital(9.0, encounter="enc-2")) == "new"
    assert stay_of(ended, vital(2.0, encounter="enc-2")) == "ended"  # before the end: never the next stay


@settings(max_examples=200, deadline=None)
@given(
    end_h=st.floats(0, 200, allow_nan=False),
    at_h=st.floats(0, 400, allow_nan=False),
    ended_encounter=st.sampled_from([None, "enc-1"]),
    encounter=st.sampled_from([None, "enc-1", "enc-2"]),
)
def test_an_event_after_a_discharge_is_of_the_ended_stay_or_the_next_never_both(
    end_h, at_h, ended_encounter, encounter
) -> None:
    ended = end_stay(stay(2), leaves(end_h, encounter=ended_encounter))
    event = vital(at_h, encounter=encounter)
    of = stay_of(ended, event)
    assert of in ("ended", "new")
    # the end: the discharge time, or the stay's newest observation (hour 1.25) when later
    end_s = max(int((T0 + timedelta(hours=end_h)).timestamp()), int((T0 + timedelta(hours=1.25)).timestamp()))
    assert ended.ended_s == end_s
    assert (of == "ended") == (int(event.observed_at.timestamp()) <= end_s)
    if of == "new":  # the next stay refuses the ended stay's late events too, and only those
        fresh = next_stay(ended)
        assert stay_of(fresh, vital(end_h)) == "ended"  # at or before the end: the ended stay's
        fresh.apply(event)
        assert stay_of(fresh, vital(at_h + 0.1)) == "current"


def test_a_discharge_from_before_the_stay_that_goes_on_does_not_end_it() -> None:
    going = next_stay(end_stay(stay(3), leaves(3.5)))
    going.apply(vital(10.25))  # readmitted at hour 10
    late = leaves(3.5, encounter="enc-0")  # the first stay's A03 sent again by the interface engine
    assert stay_of(going, late) == "ended"  # at or before the end of the stay before
    rejected = stay_rejection(going, late, "ended")
    assert rejected.reason == "duplicate"  # that same discharge, sent again
    older = leaves(3.0, encounter="enc-0")
    assert stay_rejection(going, older, stay_of(going, older)).reason == "stay_ended"
    # a discharge of a stay of which the window holds no end, from before its first observation
    fresh = stay(0)
    fresh.apply(vital(10.5))
    assert stay_of(fresh, leaves(10.1)) == "earlier"  # within hour 10, before 10:30: not this stay's
    assert "earlier stay" in stay_rejection(fresh, leaves(10.1), "earlier").detail
    assert stay_of(going, leaves(12.0, encounter="enc-2")) == "current"  # its own discharge


def test_the_next_stay_starts_at_its_own_hour_zero() -> None:
    ended = end_stay(stay(30), leaves(30.5))
    fresh = next_stay(ended)
    assert fresh.ended_s is None and fresh.position == (0, 41) and fresh.ward == "ICU-A"
    fresh.apply(vital(72.25))
    assert fresh.last_hour == 0 and fresh.anchor_s == int((T0 + timedelta(hours=72)).timestamp())


def test_a_discharge_resolves_the_active_alert_and_the_next_stay_alerts_at_once() -> None:
    alert = PatientAlertState()
    opened = on_score(alert, score(2, 7, "high"), POLICY)
    assert [a.state for a in opened] == ["open"]
    event = leaves(3.5)
    end = discharge(stay(3), alert, event, T0 + timedelta(hours=4))
    assert [(a.state, a.alert_id) for a in end.alerts] == [("resolved", opened[0].alert_id)]
    resolved = end.alerts[0]
    assert resolved.reason == "patient discharged: the stay ended" and resolved.at == T0 + timedelta(hours=3.5)
    assert resolved.ward == "ICU-A" and resolved.encounter == "enc-1" and resolved.by is None
    assert alert.active is None and alert.closed_s is None and alert.trend == [] and alert.patient_id == "p1"
    record = end.record
    assert record.resolved_alert == opened[0].alert_id and record.hours == 3 and record.encounter == "enc-1"
    assert record.ended_at == T0 + timedelta(hours=3.5) and record.event_id == event.event_id
    # readmitted an hour later, as ill: a new alert at once (no suppression carried from the stay)
    again = on_score(alert, score(5, 7, "high"), POLICY)
    assert [a.state for a in again] == ["open"]


def test_a_transfer_out_resolves_the_alert_saying_so_and_the_record_names_it() -> None:
    alert = PatientAlertState()
    on_score(alert, score(2, 7, "high"), POLICY)
    moved = leaves(3.5, ward=None, code="transfer_out")  # out of theatre: the stay's ward
    end = discharge(stay(3), alert, moved, T0 + timedelta(hours=4))
    (resolved,) = end.alerts
    assert resolved.reason == "patient transferred out of the monitored units: the stay ended"
    assert end.record.ended_by == "transfer_out" and end.record.ward == "ICU-A"  # the stay's own unit
    assert discharge(stay(3), PatientAlertState(), leaves(3.5), T0).record.ended_by == "discharge"


def test_a_discharge_without_an_alert_resolves_nothing_and_names_what_it_left_unscored() -> None:
    alert = PatientAlertState()
    end = discharge(stay(2), alert, leaves(2.5, encounter=None, ward=None), T0, ["e1", "e2"])
    assert end.alerts == [] and end.record.resolved_alert is None
    assert end.record.unscored_event_ids == ["e1", "e2"] and end.record.ward == "ICU-A"


def test_what_an_ended_stay_refuses_and_why() -> None:
    ended = end_stay(stay(2), leaves(2.5))
    late = stay_rejection(ended, vital(2.0), stay_of(ended, vital(2.0)))
    assert late.reason == "stay_ended" and "2025-01-01T02:30:00Z" in late.detail and "p1" not in late.detail
    again = leaves(2.5).model_copy(update={"observed_at": T0 + timedelta(hours=2.5, microseconds=500_000)})
    assert stay_of(ended, again) == "ended"  # whole seconds: 02:30:00.5 is the same discharge
    assert stay_rejection(ended, again, "ended").reason == "duplicate"
    assert stay_rejection(ended, leaves(1.0), stay_of(ended, leaves(1.0))).reason == "stay_ended"


def test_a_discharge_with_no_stay_to_end_is_refused_not_applied() -> None:
    never_seen = PatientWindow()
    assert stay_of(never_seen, leaves(1)) == "unknown"
    assert stay_rejection(never_seen, leaves(1), "unknown").reason == "unknown_stay"
    ended = end_stay(stay(2), leaves(2.5))
    # nothing since the last end: nothing to end and nothing wrong (the hospital's discharge days
    # after a transfer out of the ICU ended the stay), told apart from unknown_stay
    assert stay_of(ended, leaves(8.0, encounter="enc-2")) == "none"
    after = stay_rejection(ended, leaves(8.0), "none")
    assert after.reason == "no_open_stay" and "ended already, at 2025-01-01T02:30:00Z" in after.detail


def test_a_transfer_out_ends_an_open_stay_as_a_discharge_does_and_ends_nothing_else() -> None:
    going = stay(3)
    moved = leaves(3.5, code="transfer_out")
    assert is_discharge(moved) and stay_of(going, moved) == "current"
    assert end_stay(going, moved).ended_s == int(moved.observed_at.timestamp())
    never_seen = PatientWindow()  # from theatre to a ward, never in the monitored units
    assert stay_of(never_seen, moved) == "none"
    refused = stay_rejection(never_seen, moved, "none")
    assert refused.reason == "no_open_stay" and refused.detail.startswith("transfer_out: Vigil holds no open stay")
    assert stay_of(end_stay(going, leaves(3.5)), leaves(9, code="transfer_out")) == "none"  # ended already
    assert stay_of(never_seen, leaves(1)) == "unknown"  # a discharge of a patient never scored: as before


AWAY = frozenset({"OR", "CT"})  # the site's away units, as ``point_of_care`` names them


def in_theatre(hours: float, ward: str = "or") -> PatientEvent:
    return vital(hours).model_copy(update={"ward": ward})


def test_a_result_from_theatre_opens_no_stay_and_is_scored_in_an_open_one() -> None:
    """A ward patient in theatre (low blood pressure under anaesthesia) is not the ICU's to be paged
    for: with no open stay, a result from an away unit is ``no_open_stay``, nothing wrong; an ICU
    patient in theatre goes on being scored in the stay."""
    never_seen = PatientWindow()
    assert stay_of(never_seen, in_theatre(1), away=AWAY) == "none"
    refused = stay_rejection(never_seen, in_theatre(1), "none")
    assert refused.reason == "no_open_stay" and refused.detail == (
        "HR: from or, an away unit, with no open stay (a stay begins in a monitored unit)"
    )
    assert stay_of(never_seen, in_theatre(1, " CT "), away=AWAY) == "none"  # compared without case or spaces
    assert stay_of(never_seen, in_theatre(1), away=frozenset()) == "current"  # no away units: as before
    assert stay_of(never_seen, in_theatre(1, "MICU"), away=AWAY) == "current"  # the ICU: the stay begins
    assert stay_of(never_seen, vital(1), away=AWAY) == "current"  # no ward named: scored
    assert stay_of(stay(3), in_theatre(3.5), away=AWAY) == "current"  # the ICU patient in theatre
    ended = end_stay(stay(3), leaves(3.5, code="transfer_out"))  # moved to a ward, then to theatre
    assert stay_of(ended, in_theatre(9), away=AWAY) == "none"
    assert stay_of(ended, in_theatre(3.2), away=AWAY) == "ended"  # a late result of the stay: as before
    assert stay_of(ended, in_theatre(9, "MICU"), away=AWAY) == "new"  # back in the ICU: the next stay
    # no ward named: a vital sign is the monitored units' gateway's, the next stay; a lab the ward's
    assert stay_of(ended, vital(9), away=AWAY) == "new"  # (test_stays_out_of_order)
    assert stay_of(ended, vital(9, code="Lactate").model_copy(update={"kind": "lab"}), away=AWAY) == "none"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 48, allow_nan=False),
            st.sampled_from(["vital", "discharge", "transfer_out"]),
            st.sampled_from(["MICU", "OR", "ct", None]),
        ),
        max_size=30,
    )
)
def test_no_stay_ever_begins_in_theatre(steps: list[tuple[float, str, str | None]]) -> None:
    """Whatever the order of results, ends and moves, as the scoring step applies them: a stay's
    first observation is never an away unit's, and an away unit's result joins only an open stay."""
    window = PatientWindow()
    for hours, what, ward in steps:
        event = in_theatre(hours, ward) if what == "vital" else leaves(hours, ward=ward, code=what)
        if what == "vital" and ward is None:
            event = vital(hours)
        of = stay_of(window, event, away=AWAY)
        if of == "new":
            window, of = next_stay(window), "current"
        if of != "current":
            continue
        if is_discharge(event):
            window = end_stay(window, event)
            continue
        opened = window.observed_span() is not None
        if event.ward is not None and event.ward.strip().upper() in AWAY:
            assert opened, f"{event.ward} would open a stay"
        with contextlib.suppress(LateEvent):  # older than the window: a dead letter, as in the scoring step
            window.apply(event)


def test_a_discharge_naming_another_encounter_is_not_this_stays_end() -> None:
    going = stay(3)
    going.encounter = "inp-1"  # what the stay's events named (the scoring step keeps the newest)
    assert stay_of(going, leaves(3.5, encounter="ed-7")) == "other"  # the ED visit ended
    assert stay_rejection(going, leaves(3.5, encounter="ed-7"), "other").reason == "other_encounter"
    assert stay_of(going, leaves(3.5, encounter="inp-1")) == "current"
    assert stay_of(going, leaves(3.5, encounter=None)) == "current"  # an A03 without PV1-19


def test_a_cancelled_admission_ends_only_the_stay_of_the_visit_it_names() -> None:
    """ADT^A11: ends the stay as a discharge does, but never on a guess: a hospital-wide feed also
    cancels outpatient visits of patients who are in the ICU."""
    going = stay(3)
    going.encounter = "inp-1"
    cancelled = leaves(3.5, encounter="inp-1", code="cancel_admit")
    assert is_discharge(cancelled) and stay_of(going, cancelled) == "current"
    alert = PatientAlertState()
    opened = on_score(alert, score(2, 7, "high"), POLICY)
    end = discharge(going, alert, cancelled, T0 + timedelta(hours=4))
    assert [(a.state, a.alert_id) for a in end.alerts] == [("resolved", opened[0].alert_id)]
    assert end.alerts[0].reason == "admission cancelled (entered in error, or not admitted): the stay ended"
    assert end.record.ended_by == "cancel_admit" and end.record.encounter == "inp-1"
    for event, going_encounter, said in [
        (leaves(3.5, encounter="amb-9", code="cancel_admit"), "inp-1", "names another encounter"),
        (leaves(3.5, encounter=None, code="cancel_admit"), "inp-1", "(it names none)"),
        (leaves(3.5, encounter="inp-1", code="cancel_admit"), None, "(the stay's events name none)"),
    ]:
        going.encounter = going_encounter
        assert stay_of(going, event) == "other"
        refused = stay_rejection(going, event, "other")
        assert refused.reason == "other_encounter" and said in refused.detail, refused.detail
    assert stay_of(PatientWindow(), leaves(3.5, code="cancel_admit")) == "unknown"  # never scored


def test_the_end_is_the_later_of_the_discharge_and_the_stays_newest_observation() -> None:
    going = stay(3)
    going.apply(vital(4.5))  # the monitor sent on after the recorded discharge time
    end = discharge(going, PatientAlertState(), leaves(4.0), T0)
    assert end.window.ended_s == int((T0 + timedelta(hours=4.5)).timestamp())
    assert end.record.ended_at == T0 + timedelta(hours=4) and end.record.through == T0 + timedelta(hours=4.5)
    assert stay_of(end.window, vital(4.5)) == "ended"  # read late: the ended stay's, not a new stay


@pytest.mark.parametrize("code", ["discharge", "Discharge"])
def test_an_observation_code_never_maps_to_a_discharge(code: str) -> None:
    from vigil.schemas.codecs.loinc import VIGIL_SYSTEM, canonical_for_coding, canonical_for_local

    assert canonical_for_local(code) is None
    assert canonical_for_coding(VIGIL_SYSTEM, code) is None


def test_a_care_clock_of_the_stay_before_is_not_the_next_stays() -> None:
    from vigil.models.care import CareClock

    before = CareClock(time_zero=T0 + timedelta(hours=2))
    assert in_stay(stay(5), before.time_zero)  # the same stay: started at or after its hour 0
    fresh = next_stay(end_stay(stay(5), leaves(5.5)))
    fresh.apply(vital(30.25))
    assert not in_stay(fresh, before.time_zero)  # a clock written for the stay before the discharge
    assert in_stay(fresh, CareClock(time_zero=T0 + timedelta(hours=30.25)).time_zero)


def test_a_care_clock_started_before_the_first_measurement_stays_with_the_stay() -> None:
    # an ACVPU at 00:20 (a rules-only score at risk: the care clock's time zero), charted again at
    # 01:20, then the first vital sign at 02:30, hour 0 since bundle 2.7.0: the clock is the stay's
    # (it was dropped and the episode judged from 02:00)
    from vigil.schemas.events import PatientEvent

    w = PatientWindow()
    w.apply(
        PatientEvent(patient_id="p", observed_at=T0 + timedelta(minutes=10), kind="demographic", code="Age", value=70)
    )
    for minutes in (20, 80):
        w.apply(
            PatientEvent(
                patient_id="p", observed_at=T0 + timedelta(minutes=minutes), kind="assessment", code="ACVPU", value=1
            )
        )
    w.apply(vital(2.5))
    assert w.hour_start(0) == T0 + timedelta(hours=2)
    assert in_stay(w, T0 + timedelta(minutes=20)) and in_stay(w, T0 - timedelta(hours=45))
    assert not in_stay(w, T0 - timedelta(hours=47))  # more than two days before hour 0: not this stay's


def test_a_score_of_the_stay_before_gets_no_care_score_in_the_next() -> None:
    from vigil.schemas.scores import RiskScore, RuleScore

    def scored_at(hours: float) -> RiskScore:
        rule = RuleScore(name="NEWS2", total=0, parameters={})
        at = T0 + timedelta(hours=hours)
        return RiskScore(
            score_id="s",
            patient_id="p1",
            hour=0,
            scored_at=at,
            observed_at=at,
            event_ids=[],
            news2=rule,
            qsofa=rule,
            sirs=rule,
        )

    going = stay(5)
    assert in_stay(going, scored_at(4.25).observed_at)
    ended = end_stay(going, leaves(5.5))
    assert not in_stay(ended, scored_at(4.25).observed_at)  # discharged
    fresh = next_stay(ended)
    fresh.apply(vital(30.25))
    assert not in_stay(fresh, scored_at(4.25).observed_at)  # read after the readmission: the stay before's
    assert in_stay(fresh, scored_at(30.25).observed_at)


def test_a_late_result_of_an_earlier_visit_does_not_become_the_stays_encounter() -> None:
    # an ED lactate (ed-3) read after the ICU's vital signs (icu-7): taken as the stay's encounter, it
    # refused the ICU's own discharge and let the ED's end the ICU stay
    from vigil.models.stays import stay_encounter

    w = PatientWindow(ward="ICU-A")
    for at, enc in ((1.5, "icu-7"), (2.5, "icu-7"), (0.5, "ed-3")):
        event = vital(at, enc, code="Lactate" if enc == "ed-3" else "HR", value=2.0)
        w.apply(event)
        w.encounter = stay_encounter(w, event)
    assert w.encounter == "icu-7"
    assert stay_of(w, leaves(3.0, encounter="icu-7")) == "current"
    assert stay_of(w, leaves(2.0, encounter="ed-3")) == "other"
    newer = vital(3.5, "icu-8")  # the newest observation names the visit from now on
    w.apply(newer)
    assert stay_encounter(w, newer) == "icu-8"


def test_a_hospital_discharge_after_a_transfer_out_lets_go_of_the_icu_stay() -> None:
    # a cancel of the ward's discharge returns the patient to the ward: it resumed the ICU stay held
    # since the transfer, scored it 73 h on from old vital signs and paged with nothing to resolve it
    from vigil.models.stays import HeldStay, releases_held

    going = stay(2)
    out = discharge(going, PatientAlertState(patient_id="p1"), leaves(2.0, code="transfer_out"), T0)
    ward_discharge = leaves(74.0, ward="4WEST")
    of = stay_of(out.window, ward_discharge)
    assert of == "none" and releases_held(out.window, out.held, ward_discharge, of)
    assert not releases_held(out.window, out.held, leaves(2.0, code="transfer_out"), of)  # the same end again
    assert not releases_held(out.window, out.held, leaves(74.0, code="transfer_out"), of)  # not a discharge
    assert not releases_held(out.window, None, ward_discharge, of)
    assert isinstance(out.held, HeldStay)
