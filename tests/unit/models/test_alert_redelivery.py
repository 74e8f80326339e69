"""Alert ids that survive a crash of the scoring step between its publish and its save: the same
events delivered again, grouped into other batches, open the same alert under the same id (and the
same ``open`` transition), and answers arriving out of order leave the newest one standing."""

from __future__ import annotations

import json
from datetime import timedelta

from tests.unit.models.test_alerting import POLICY, T0, score
from vigil.models.alerting import (
    SUPERSEDED,
    PatientAlertState,
    check_escalation,
    on_ack,
    on_discharge,
    on_score,
    unapplied_reason,
)
from vigil.models.scoring import score_id
from vigil.schemas.alerts import AlertAck
from vigil.schemas.scores import RiskScore


def provisional(events: list[str], observed_min: int, total: int = 7) -> RiskScore:
    """Hour 3's score of ``events``, observed at 03:``observed_min`` (the newest of them)."""
    return score(3, total, "high" if total >= 7 else "medium").model_copy(
        update={
            "score_id": score_id("p1", T0 + timedelta(hours=3), events),
            "event_ids": events,
            "observed_at": T0 + timedelta(hours=3, minutes=observed_min),
        }
    )


def test_a_batch_regrouped_after_a_crash_opens_the_same_alert_under_the_same_ids() -> None:
    # [e1, e2, e3] scored, its open published, the worker killed before the save; delivered again,
    # Faust's take_events groups them by timing: [e1, e2], then [e3]
    (first,) = on_score(PatientAlertState(), provisional(["e1", "e2", "e3"], 20), POLICY)
    again = PatientAlertState()  # the state was never written
    replayed = on_score(again, provisional(["e1", "e2"], 10), POLICY) + on_score(again, provisional(["e3"], 20), POLICY)
    assert [(a.state, a.alert_id, a.transition_id) for a in replayed] == [("open", first.alert_id, first.transition_id)]
    # grouped so that the first part opens lower: the same alert, escalated (not a second one)
    split = PatientAlertState()
    lower = on_score(split, provisional(["e1", "e2"], 10, total=5), POLICY)
    higher = on_score(split, provisional(["e3"], 20), POLICY)
    assert [a.alert_id for a in lower + higher] == [first.alert_id] * 2
    assert [a.state for a in higher] == ["escalated"]
    # an acknowledgement of the alert as first published applies to the one the replay opened
    ack = AlertAck(alert_id=first.alert_id, patient_id="p1", action="acknowledge", by="rn", at=T0)
    assert [a.state for a in on_ack(again, ack)] == ["acknowledged"]


def test_each_alert_opened_has_its_own_id_through_stays_and_saves() -> None:
    state = PatientAlertState()
    (one,) = on_score(state, score(0, 7, "high"), POLICY)
    on_score(state, score(1, 2), POLICY)  # resolved
    (two,) = on_score(state, score(2, 10, "high"), POLICY)  # worse than the resolved raise: opens
    on_discharge(state, T0 + timedelta(hours=3))
    assert state.alerts_opened == 2  # the next stay counts on: its alerts never take this one's ids
    (three,) = on_score(state, score(0, 7, "high"), POLICY)
    assert len({one.alert_id, two.alert_id, three.alert_id}) == 3
    saved = PatientAlertState.from_bytes(state.to_bytes())
    assert saved.alerts_opened == 3
    on_score(saved, score(1, 2), POLICY)
    (four,) = on_score(saved, score(9, 7, "high"), POLICY)
    assert four.alert_id not in {one.alert_id, two.alert_id, three.alert_id}


def test_a_lifecycle_lost_and_begun_again_never_repeats_an_id_or_an_open() -> None:
    """An expired, unreadable or older version's state counts its alerts from 0 again: the first event
    it scores tells its ids apart, or a consumer deduplicating on ``transition_id`` dropped the open."""
    (before,) = on_score(PatientAlertState(), score(0, 7, "high"), POLICY)
    (after,) = on_score(PatientAlertState(), score(200, 7, "high"), POLICY)  # the first event: e200
    assert after.alert_id != before.alert_id and after.transition_id != before.transition_id


def test_a_state_written_before_the_count_and_the_answer_time_loads_and_opens_a_new_id() -> None:
    state = PatientAlertState()
    (opened,) = on_score(state, score(0, 7, "high"), POLICY)
    on_ack(state, AlertAck(alert_id=opened.alert_id, patient_id="p1", action="acknowledge", by="rn", at=T0))
    raw = json.loads(state.to_bytes())
    del raw["alerts_opened"], raw["first_event_id"], raw["active"]["answered_wall_s"]
    raw["active"]["alert_id"] = "0123456789abcdef01234567"  # an id of the older form
    older = PatientAlertState.from_bytes(json.dumps(raw).encode())
    assert older.alerts_opened == 0 and older.first_event_id is None
    assert older.active is not None and older.active.answered_wall_s is None
    assert older.active.alert_id == "0123456789abcdef01234567"  # the active alert keeps its id
    on_score(older, score(1, 2), POLICY)
    (next_one,) = on_score(older, score(9, 7, "high"), POLICY)
    assert older.alerts_opened == 1 and next_one.alert_id != "0123456789abcdef01234567"


def answer(alert_id: str, action: str, minute: float, **more: object) -> AlertAck:
    return AlertAck(
        alert_id=alert_id, patient_id="p1", action=action, by="rn", at=T0 + timedelta(minutes=minute), **more
    )


def test_an_older_acknowledgement_arriving_after_a_snooze_does_not_clear_it() -> None:
    state = PatientAlertState()
    (opened,) = on_score(state, score(0, 6, "medium"), POLICY)
    snooze = answer(opened.alert_id, "snooze", 5, snooze_min=30, note="lactate pending")
    assert [a.state for a in on_ack(state, snooze)] == ["acknowledged"]
    late = answer(opened.alert_id, "acknowledge", 1)  # clicked at 10:01, read after the 10:05 snooze
    assert unapplied_reason(state, late) == SUPERSEDED and on_ack(state, late) == []
    assert state.active is not None and state.active.snoozed_until_s == (T0 + timedelta(minutes=35)).timestamp()
    (back,) = check_escalation(state, (T0 + timedelta(minutes=40)).timestamp(), POLICY)
    assert back.state == "open" and back.reason == "snooze ended (lactate pending)"  # the reminder kept


def test_an_older_snooze_arriving_after_an_acknowledgement_does_not_page_when_it_ends() -> None:
    state = PatientAlertState()
    (opened,) = on_score(state, score(0, 6, "medium"), POLICY)
    assert [a.state for a in on_ack(state, answer(opened.alert_id, "acknowledge", 20))] == ["acknowledged"]
    stale = answer(opened.alert_id, "snooze", 0, snooze_min=15, note="x")  # a pager's, read late
    assert unapplied_reason(state, stale) == SUPERSEDED and on_ack(state, stale) == []
    assert check_escalation(state, (T0 + timedelta(minutes=21)).timestamp(), POLICY) == []
    # a newer answer still applies, and the same one again is "already"
    (snoozed,) = on_ack(state, answer(opened.alert_id, "snooze", 25, snooze_min=15, note="y"))
    assert snoozed.state == "acknowledged" and snoozed.note == "y"
    assert unapplied_reason(state, answer(opened.alert_id, "snooze", 25, snooze_min=15, note="y")) == "already"
    # an older resolution does not resolve what a newer answer left active
    assert unapplied_reason(state, answer(opened.alert_id, "resolve", 22)) == SUPERSEDED


def test_a_batch_regrouped_across_an_hour_opens_the_same_alert() -> None:
    """Events of 02:50 and 03:05 scored together open the alert in hour 3; delivered again apart, in
    hour 2: an id that took the hour paged twice, and the first alert's acknowledgement was refused."""

    def at(hour: int, events: list[str], minute: int) -> RiskScore:
        return score(hour, 7, "high").model_copy(
            update={
                "score_id": score_id("p1", T0 + timedelta(hours=hour), events),
                "event_ids": events,
                "observed_at": T0 + timedelta(hours=hour, minutes=minute),
            }
        )

    (first,) = on_score(PatientAlertState(), at(3, ["e1", "e2"], 5), POLICY)
    again = PatientAlertState()
    replayed = on_score(again, at(2, ["e1"], 50), POLICY) + on_score(again, at(3, ["e2"], 5), POLICY)
    assert [a.alert_id for a in replayed if a.state == "open"] == [first.alert_id]
    ack = AlertAck(alert_id=first.alert_id, patient_id="p1", action="acknowledge", by="rn", at=T0 + timedelta(hours=4))
    assert [a.state for a in on_ack(again, ack)] == ["acknowledged"]
