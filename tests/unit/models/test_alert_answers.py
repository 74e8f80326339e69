"""What an answer to an alert covers, and what still pages: the lifecycle cases a review found
silencing a worse patient (an answer given before the alert was raised again, a cancelled discharge,
a resolution dated on the clinician's clock) or paging for nothing (NEWS2 rising within the low band)."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.models.test_alerting import POLICY, T0, score
from vigil.models.alerting import (
    ANSWERED_BEFORE_RAISE,
    PatientAlertState,
    check_escalation,
    on_ack,
    on_discharge,
    on_resume,
    on_score,
    unapplied_reason,
)
from vigil.schemas.alerts import AlertAck


def answer(alert_id: str, action: str = "acknowledge", minute: float = 0.0, **more: object) -> AlertAck:
    return AlertAck(
        alert_id=alert_id, patient_id="p1", action=action, by="rn", at=T0 + timedelta(minutes=minute), **more
    )


def test_an_acknowledgement_given_before_the_patient_got_worse_does_not_cover_the_escalation() -> None:
    state = PatientAlertState()
    (opened,) = on_score(state, score(0, 5, "medium", wall_min=0), POLICY)
    (worse,) = on_score(state, score(1, 7, "high", wall_min=20), POLICY)  # raised at 10:20
    assert worse.state == "escalated"
    late = answer(opened.alert_id, minute=15)  # clicked at 10:15 on the medium alert, read after
    assert unapplied_reason(state, late) == ANSWERED_BEFORE_RAISE and on_ack(state, late) == []
    assert state.active is not None and state.active.state == "escalated"
    snooze = answer(opened.alert_id, "snooze", minute=15, snooze_min=240, note="seen")
    assert on_ack(state, snooze) == []
    resolve = answer(opened.alert_id, "resolve", minute=15)
    assert on_ack(state, resolve) == [] and state.active is not None
    (acked,) = on_ack(state, answer(opened.alert_id, minute=21))  # given after the raise: applies
    assert acked.state == "acknowledged" and acked.severity == "high"


def test_an_acknowledgement_late_for_a_timer_escalation_still_applies() -> None:
    # "not acknowledged within 30 min" is the same alert, not a worse patient: the answer covers it
    state = PatientAlertState()
    (opened,) = on_score(state, score(0, 5, "medium", wall_min=0), POLICY)
    (timer,) = check_escalation(state, (T0 + timedelta(minutes=31)).timestamp(), POLICY)
    assert timer.state == "escalated"
    (acked,) = on_ack(state, answer(opened.alert_id, minute=29))
    assert acked.state == "acknowledged"


def test_a_snooze_redelivered_after_it_ended_does_not_snooze_again() -> None:
    state = PatientAlertState()
    (opened,) = on_score(state, score(0, 7, "high"), POLICY)
    snooze = answer(opened.alert_id, "snooze", snooze_min=30, note="lab pending")
    assert [a.state for a in on_ack(state, snooze)] == ["acknowledged"]
    (back,) = check_escalation(state, (T0 + timedelta(minutes=31)).timestamp(), POLICY)
    assert back.state == "open"
    assert on_ack(state, snooze) == []  # the same snooze again: it answered the alert before it ended
    assert check_escalation(state, (T0 + timedelta(minutes=62)).timestamp(), POLICY)[0].state == "escalated"


def test_two_escalations_stamped_alike_have_two_transition_ids() -> None:
    # one hour's vitals arriving in two batches: NEWS2 7 -> 9, then 9 -> 11, both observed at 10:00
    state = PatientAlertState()
    on_score(state, score(0, 7, "high"), POLICY)
    (first,) = on_score(state, score(1, 9, "high"), POLICY)
    (second,) = on_score(state, score(1, 11, "high"), POLICY)
    assert first.at == second.at and first.state == second.state == "escalated"
    assert first.transition_id != second.transition_id
    replayed = PatientAlertState()
    on_score(replayed, score(0, 7, "high"), POLICY)
    assert on_score(replayed, score(1, 9, "high"), POLICY)[0].transition_id == first.transition_id


def test_a_cancelled_discharge_pages_when_the_patient_is_worse_than_what_was_answered() -> None:
    for total, pages in ((8, False), (13, True)):
        state = PatientAlertState(patient_id="p1")
        (opened,) = on_score(state, score(0, 7, "high"), POLICY)
        on_ack(state, answer(opened.alert_id))
        on_discharge(state, T0 + timedelta(hours=1))
        on_resume(state, "cancel-1")
        (first,) = on_score(state, score(3, total, "high"), POLICY)
        assert (first.state == "open") is pages, (total, first.state)
        assert ("acknowledged by rn before the discharge" in first.reason) is not pages


def test_a_clinicians_resolution_suppresses_from_when_it_was_given_within_a_window_of_the_data() -> None:
    state = PatientAlertState()
    (opened,) = on_score(state, score(0, 7, "high"), POLICY)
    on_ack(state, answer(opened.alert_id, "resolve", minute=120), POLICY)  # two hours after the observation
    assert state.closed_s == (T0 + timedelta(hours=2)).timestamp()
    assert on_score(state, score(7, 7, "high"), POLICY) == []  # within 6 h of the resolution
    assert [a.state for a in on_score(state, score(8, 7, "high"), POLICY)] == ["open"]
    # read 30 h after the newest observation (a backlog, a replay): never past the window after the data
    late = PatientAlertState()
    (opened,) = on_score(late, score(0, 7, "high"), POLICY)
    on_ack(late, answer(opened.alert_id, "resolve", minute=30 * 60), POLICY)
    assert late.closed_s == (T0 + timedelta(hours=6)).timestamp()
    assert [a.state for a in on_score(late, score(12, 7, "high"), POLICY)] == ["open"]  # not at 36 h


def test_a_clinicians_resolution_releases_the_model_latch() -> None:
    state = PatientAlertState()
    (opened,) = on_score(state, score(0, 1, prob=0.6), POLICY)
    on_ack(state, answer(opened.alert_id, "resolve"), POLICY)
    assert on_score(state, score(7, 1, prob=0.45), POLICY) == []  # in the hysteresis band: below 0.5
    assert [a.state for a in on_score(state, score(8, 1, prob=0.55), POLICY)] == ["open"]


def test_news2_rising_within_the_low_band_does_not_re_escalate_a_model_alert() -> None:
    state = PatientAlertState()
    on_score(state, score(0, 0, prob=0.6), POLICY)
    assert on_score(state, score(1, 2, prob=0.6), POLICY) == []
    assert on_score(state, score(2, 4, prob=0.6), POLICY) == []
    (medium,) = on_score(state, score(3, 5, "medium", prob=0.6), POLICY)  # into the medium band
    assert medium.state == "escalated" and "NEWS2 0 → 5" in medium.reason


def test_a_patient_much_worse_after_a_resolution_is_paged_inside_the_window() -> None:
    state = PatientAlertState()
    on_score(state, score(0, 7, "high"), POLICY)
    on_score(state, score(1, 3), POLICY)  # resolved
    assert on_score(state, score(2, 8, "high"), POLICY) == []  # back where it was raised: suppressed
    (again,) = on_score(state, score(3, 9, "high"), POLICY)  # 2 above the resolved alert's raise
    assert again.state == "open" and again.severity == "high"
