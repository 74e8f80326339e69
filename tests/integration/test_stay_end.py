"""The end of a stay on the real broker and Redis: a discharge resolves the patient's alert, ends
the state, publishes the stay's end; a late event of that stay is a dead letter; the patient
admitted again is scored from the next stay's hour 0, with nothing carried over."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import unique_patient, wait_for
from tests.integration.test_pipeline import send, vitals
from vigil.infra.connect import redis_client
from vigil.infra.redis import alert_key, carry_key, held_keys, unpack_state, window_key
from vigil.models.alerting import PatientAlertState
from vigil.models.window import PatientWindow
from vigil.schemas import topics
from vigil.schemas.alerts import AlertAck
from vigil.schemas.events import PatientEvent

pytestmark = pytest.mark.integration


def discharge_event(pid: str, at: datetime, encounter: str = "enc-1") -> PatientEvent:
    return PatientEvent(
        patient_id=pid,
        observed_at=at,
        kind="encounter",
        code="discharge",
        value=1,
        encounter=encounter,
        ward="ICU-S",
        source="adt",
    )


def lactate(pid: str, at: datetime, value: float) -> PatientEvent:
    """A lactate result from the laboratory system (no ward, no encounter)."""
    return PatientEvent(
        patient_id=pid, observed_at=at, kind="lab", code="Lactate", value=value, unit="mmol/L", source="lis"
    )


def test_a_discharge_ends_the_stay_and_a_readmission_starts_afresh(
    stack, stack_settings, shared_worker, producer, reader
) -> None:
    r = reader(keep_scores=True)
    pid = unique_patient("stay")
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=12)
    first = [
        e.model_copy(update={"ward": "ICU-S", "encounter": "enc-1"})
        for e in vitals(pid, 0, 80, 16, 125, 97, 37.0, base)
    ]
    ill = [e.model_copy(update={"encounter": "enc-1"}) for e in vitals(pid, 1, 135, 27, 88, 90, 39.4, base)]
    for events in (first, ill):
        send(producer, events)
        assert wait_for(lambda ids={e.event_id for e in events}: ids <= r.snapshot().scored_ids, timeout=60)

    def alerts() -> list[dict]:
        return [a for a in r.snapshot().alert_records if a["patient_id"] == pid]

    assert wait_for(lambda: any(a["state"] == "open" for a in alerts()), timeout=60)
    opened = next(a for a in alerts() if a["state"] == "open")
    redis = redis_client(stack_settings)
    assert redis.get(carry_key(pid)) is not None  # the stay's aggregates, before the discharge

    leaving = discharge_event(pid, base + timedelta(hours=1, minutes=40))
    send(producer, [leaving])
    assert wait_for(lambda: leaving.event_id in r.snapshot().ended_ids, timeout=60)
    record = next(s for s in r.snapshot().stay_records if s["patient_id"] == pid)
    assert record["resolved_alert"] == opened["alert_id"] and record["hours"] == 2
    assert record["encounter"] == "enc-1" and record["ward"] == "ICU-S"
    assert wait_for(lambda: any(a["state"] == "resolved" for a in alerts()), timeout=30)
    resolved = next(a for a in alerts() if a["state"] == "resolved")
    assert resolved["alert_id"] == opened["alert_id"] and "discharged" in resolved["reason"]

    # Redis: the window ended (no rows), the carry gone, the lifecycle afresh and off the timer
    window = PatientWindow.from_bytes(unpack_state(redis.get(window_key(pid))))
    assert window.rows == {} and window.ended_s == int(leaving.observed_at.timestamp())
    assert redis.get(carry_key(pid)) is None
    assert PatientAlertState.from_bytes(redis.get(alert_key(pid))).active is None

    # a lab of the ended stay that arrives late, and the same discharge sent again: dead letters
    late = lactate(pid, base + timedelta(hours=1, minutes=20), 4.1)
    twin = discharge_event(pid, leaving.observed_at)
    send(producer, [late, twin])
    assert wait_for(lambda: {late.event_id, twin.event_id} <= r.snapshot().dead_ids, timeout=60)
    reasons = r.snapshot().dead_letter_reasons
    assert reasons["duplicate"] >= 1 and reasons["internal"] == 0  # the twin refused, not a batch failure
    assert late.event_id not in r.snapshot().scored_ids

    # admitted again six hours later: scored from its own hour 0, and as ill it alerts at once
    again = [e.model_copy(update={"encounter": "enc-2"}) for e in vitals(pid, 8, 135, 27, 88, 90, 39.4, base)]
    send(producer, again)
    assert wait_for(lambda: {e.event_id for e in again} <= r.snapshot().scored_ids, timeout=60)
    scores = [s for (p, _), s in r.snapshot().last_scores.items() if p == pid and s["encounter"] == "enc-2"]
    assert [s["hour"] for s in scores] == [0]
    assert wait_for(lambda: len([a for a in alerts() if a["state"] == "open"]) == 2, timeout=60)
    reopened = [a for a in alerts() if a["state"] == "open"][-1]
    assert reopened["alert_id"] != opened["alert_id"]

    # a discharge of a patient Vigil never scored (a hospital-wide ADT feed): refused, nothing ended
    stranger = discharge_event(unique_patient("never"), base + timedelta(hours=9))
    send(producer, [stranger])
    assert wait_for(lambda: stranger.event_id in r.snapshot().dead_ids, timeout=60)
    assert r.snapshot().dead_letter_reasons["unknown_stay"] >= 1
    assert not any(s["patient_id"] == stranger.patient_id for s in r.snapshot().stay_records)

    sent = {e.event_id for e in [*first, *ill, leaving, late, twin, *again, stranger]}
    ok, _ = r.snapshot().accounted(sent, set())
    assert ok == len(sent)  # every event scored, dead-lettered or named by the stay's end
    redis.close()


def test_a_cancelled_discharge_resumes_the_stay_with_its_history(
    stack, stack_settings, shared_worker, producer, reader
) -> None:
    """ADT^A13 after a discharge entered in error: the hours the monitors sent meanwhile were scored
    as a next stay from its hour 0; the cancel folds them back and the stay is scored on from its
    own admission, and alerts as the ill patient it is."""
    r = reader(keep_scores=True)
    pid = unique_patient("resume")
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=12)
    stay = [
        e.model_copy(update={"encounter": "enc-1"})
        for h in range(3)
        for e in vitals(pid, h, 84, 17, 122, 97, 37.1, base)
    ]
    send(producer, stay)
    assert wait_for(lambda: {e.event_id for e in stay} <= r.snapshot().scored_ids, timeout=60)
    leaving = discharge_event(pid, base + timedelta(hours=2, minutes=40))
    send(producer, [leaving])
    assert wait_for(lambda: leaving.event_id in r.snapshot().ended_ids, timeout=60)

    meanwhile = vitals(pid, 4, 96, 22, 108, 94, 38.2, base)  # the patient never left: the monitor sends on
    late = lactate(pid, base + timedelta(hours=2, minutes=20), 3.9)  # drawn before the discharge, resulted after
    send(producer, [*meanwhile, late])
    assert wait_for(lambda: {e.event_id for e in meanwhile} <= r.snapshot().scored_ids, timeout=60)
    assert wait_for(lambda: late.event_id in r.snapshot().dead_ids, timeout=60)  # stay_ended, but kept

    def scores_naming(*events: PatientEvent) -> list[dict]:
        """The newest score of each hour that names any of ``events`` (an hour's events can reach the
        worker in more than one batch: its newest score names those of the last)."""
        ids = {e.event_id for e in events}
        return [s for (p, _), s in r.snapshot().last_scores.items() if p == pid and ids & set(s["event_ids"])]

    assert [s["hour"] for s in scores_naming(*meanwhile)] == [0]  # a next stay's hour 0

    cancel = discharge_event(pid, base + timedelta(hours=5)).model_copy(update={"code": "cancel_discharge"})
    send(producer, [cancel])
    assert wait_for(lambda: cancel.event_id in r.snapshot().scored_ids, timeout=60)
    (resumed_score,) = scores_naming(cancel)
    assert resumed_score["hour"] == 4  # hours from the first admission
    # stamped with the stay's newest observation (hour 4's vitals), not the cancel's time
    assert resumed_score["observed_at"].startswith(meanwhile[0].observed_at.strftime("%Y-%m-%dT%H:%M"))
    resumed = next(s for s in r.snapshot().stay_records if s.get("record") == "stay_resumed" and s["patient_id"] == pid)
    assert resumed["event_id"] == cancel.event_id and resumed["folded_hours"] == 1 and resumed["hours"] == 5
    assert resumed["cancelled_end"].startswith((base + timedelta(hours=2, minutes=40)).strftime("%Y-%m-%dT%H:%M"))

    redis = redis_client(stack_settings)
    window = PatientWindow.from_bytes(unpack_state(redis.get(window_key(pid))))
    assert window.ended_s is None and sorted(window.rows) == [0, 1, 2, 4]
    assert window.current_values(at_hour=2)["Lactate"] == pytest.approx(3.9)  # the late result kept
    assert all(redis.get(k) is None for k in held_keys(pid))  # nothing held: a second cancel is refused

    ill = vitals(pid, 5, 138, 29, 86, 89, 39.6, base)
    again = discharge_event(pid, base + timedelta(hours=5, minutes=5)).model_copy(
        update={"code": "cancel_discharge", "event_id": "twin-cancel-" + pid}
    )
    resent = leaving.model_copy(update={"event_id": "resent-discharge-" + pid})  # a second feed's copy
    send(producer, [*ill, again, resent])
    assert wait_for(lambda: {e.event_id for e in ill} <= r.snapshot().scored_ids, timeout=60)
    assert [s["hour"] for s in scores_naming(*ill)] == [5]
    assert wait_for(lambda: {again.event_id, resent.event_id} <= r.snapshot().dead_ids, timeout=60)
    assert not any(s["event_id"] == resent.event_id for s in r.snapshot().stay_records)  # not ended twice
    assert r.snapshot().dead_letter_reasons["internal"] == 0
    assert wait_for(
        lambda: any(a["state"] == "open" and a["patient_id"] == pid for a in r.snapshot().alert_records), timeout=60
    )
    sent = {e.event_id for e in [*stay, leaving, *meanwhile, late, cancel, *ill, again, resent]}
    ok, _ = r.snapshot().accounted(sent, set())
    assert ok == len(sent)
    redis.close()


def test_an_alert_acknowledged_before_a_discharge_in_error_comes_back_acknowledged(
    stack, stack_settings, shared_worker, producer, reader
) -> None:
    """The team answered the alert; the discharge entered in error resolved it; the cancel resumes
    the stay, whose alert (a new id) opens acknowledged by the same nurse: nobody is paged again."""
    r = reader()
    pid = unique_patient("ack-resume")
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=4)
    ill = [e.model_copy(update={"encounter": "enc-1"}) for e in vitals(pid, 0, 140, 30, 85, 88, 39.5, base)]
    send(producer, ill)
    assert wait_for(lambda: {e.event_id for e in ill} <= r.snapshot().scored_ids, timeout=90)

    def transitions() -> list[dict]:
        return [a for a in r.snapshot().alert_records if a["patient_id"] == pid]

    assert wait_for(lambda: any(a["state"] == "open" for a in transitions()), timeout=30)
    time.sleep(1)  # the hour's last transition (its events may have come in two batches)
    first = transitions()[-1]["alert_id"]
    ack = AlertAck(alert_id=first, patient_id=pid, action="acknowledge", by="nurse.a", at=datetime.now(UTC))
    producer.send(topics.ALERT_ACKS, key=pid.encode(), value=ack.model_dump_json().encode())
    producer.flush()
    assert wait_for(lambda: any(a["state"] == "acknowledged" for a in transitions()), timeout=60)

    leaving = discharge_event(pid, base + timedelta(minutes=40))
    send(producer, [leaving])
    assert wait_for(lambda: any(a["state"] == "resolved" for a in transitions()), timeout=60)
    cancel = discharge_event(pid, base + timedelta(minutes=50)).model_copy(update={"code": "cancel_discharge"})
    send(producer, [cancel])
    assert wait_for(lambda: cancel.event_id in r.snapshot().scored_ids, timeout=60)
    assert wait_for(lambda: any(a["alert_id"] != first for a in transitions()), timeout=30)
    time.sleep(1)  # any further transition of the resume's batch
    (back,) = [a for a in transitions() if a["alert_id"] != first]
    assert back["state"] == "acknowledged" and back["by"] == "nurse.a", back  # not "open": no page
    assert back["reason"].startswith(
        f"acknowledged by nurse.a before the discharge that was cancelled (alert #{first[:8]})"
    )
    redis = redis_client(stack_settings)
    state = PatientAlertState.from_bytes(redis.get(alert_key(pid)))
    redis.close()
    assert state.active is not None and state.active.alert_id == back["alert_id"] and state.active.acked_by == "nurse.a"
    assert state.resumed_ack is None and state.discharged_ack is None


A11 = (Path(__file__).parents[1] / "unit" / "codecs" / "fixtures" / "hl7v2" / "adt_a11_cancel_admit.hl7").read_text()


def test_a_cancelled_admission_ends_the_stay_of_its_visit_and_no_other(stack, shared_worker, producer, reader) -> None:
    """ADT^A11 through `vigil.ingest.hl7v2`: one that cancels another visit (an outpatient
    appointment of a patient who is in the ICU), or that names no visit, is refused `other_encounter`
    and the stay goes on;
    the one that cancels the stay's own visit ends it (`ended_by` `cancel_admit`), off the ward."""
    from tests.integration.test_mllp import oru_for

    r = reader(keep_scores=True)
    pid = unique_patient("a11")
    at = datetime.now(UTC) - timedelta(hours=2)
    stamp = (at + timedelta(minutes=30)).strftime("%Y%m%d%H%M%S+0000")

    def cancel(visit: str, control: str) -> bytes:
        text = A11.replace("4420011", pid).replace("V77120044", visit).replace("ADT20240316104502013", control)
        return text.replace("20240316104500+0000", stamp).replace("20240316104000+0000", stamp).encode()

    producer.send(topics.INGEST_HL7V2, key=pid.encode(), value=oru_for(pid, f"{pid}-1", at))  # visit V77120044
    producer.flush()
    assert wait_for(lambda: any(p == pid for p, _ in r.snapshot().last_scores), timeout=60), "scored"
    refused = r.snapshot().dead_letter_reasons["other_encounter"]
    producer.send(topics.INGEST_HL7V2, key=pid.encode(), value=cancel("AMB-5", f"{pid}-a11-amb"))
    producer.send(topics.INGEST_HL7V2, key=pid.encode(), value=cancel("", f"{pid}-a11-none"))  # no PV1-19
    producer.flush()
    assert wait_for(lambda: r.snapshot().dead_letter_reasons["other_encounter"] >= refused + 2, timeout=60)
    assert not [s for s in r.snapshot().stay_records if s["patient_id"] == pid]  # the stay goes on
    producer.send(topics.INGEST_HL7V2, key=pid.encode(), value=cancel("V77120044", f"{pid}-a11"))
    producer.flush()
    ended = lambda: [s for s in r.snapshot().stay_records if s["patient_id"] == pid]  # noqa: E731
    assert wait_for(ended, timeout=60), f"no end: {dict(r.snapshot().dead_letter_reasons)}"
    (record,) = ended()
    assert (record["ended_by"], record["encounter"], record["source"]) == ("cancel_admit", "V77120044", "hl7v2")


def fhir_encounter(pid: str, status: str, at: datetime, **extra: object) -> bytes:
    """The visit's FHIR Encounter as a server sends it on an update (``at``: the discharge's time)."""
    import json

    resource = {
        "resourceType": "Encounter",
        "id": "V77120044",
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": f"Patient/{pid}"},
        "period": {
            "start": (at - timedelta(hours=3)).isoformat(),
            **({"end": at.isoformat()} if status == "finished" else {}),
        },
        **extra,
    }
    return json.dumps(resource).encode()


def test_a_fhir_encounter_in_progress_again_after_its_discharge_resumes_the_stay(
    stack, shared_worker, producer, reader
) -> None:
    """A FHIR server that undoes a discharge by setting the Encounter back to in-progress (its
    statusHistory keeping the finished period), with no A13 message: through `vigil.ingest.fhir` the
    finished Encounter ended the stay, the reopened one resumes it with its history; the server's next
    update of the same Encounter is the same cancel again, a duplicate that resumes nothing."""
    from tests.integration.test_transfers import stay_records

    r = reader(keep_scores=True)
    pid = unique_patient("reopen")
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=12)
    stay = [
        e.model_copy(update={"encounter": "V77120044"})
        for h in range(3)
        for e in vitals(pid, h, 88, 18, 120, 96, 37.4, base)
    ]
    send(producer, stay)
    assert wait_for(lambda: {e.event_id for e in stay} <= r.snapshot().scored_ids, timeout=60)
    left = base + timedelta(hours=2, minutes=40)
    producer.send(topics.INGEST_FHIR, key=pid.encode(), value=fhir_encounter(pid, "finished", left))
    producer.flush()
    assert wait_for(lambda: stay_records(r, pid, "stay_ended"), timeout=60), (
        f"no end: {dict(r.snapshot().dead_letter_reasons)}"
    )

    undone = left + timedelta(minutes=25)
    history = [{"status": "finished", "period": {"start": left.isoformat(), "end": undone.isoformat()}}]
    duplicates = r.snapshot().dead_letter_reasons["duplicate"]
    for version in ("8", "9"):  # the update that undid the discharge, then the server's next one
        update = fhir_encounter(pid, "in-progress", left, statusHistory=history, meta={"versionId": version})
        producer.send(topics.INGEST_FHIR, key=pid.encode(), value=update)
    producer.flush()
    assert wait_for(lambda: stay_records(r, pid, "stay_resumed"), timeout=60), (
        f"not resumed: {dict(r.snapshot().dead_letter_reasons)}"
    )
    assert wait_for(lambda: r.snapshot().dead_letter_reasons["duplicate"] > duplicates, timeout=60)
    (record,) = stay_records(r, pid, "stay_resumed")
    assert (record["encounter"], record["source"], record["hours"]) == ("V77120044", "fhir", 3)
    assert record["cancelled_at"].startswith(undone.strftime("%Y-%m-%dT%H:%M"))
    later = vitals(pid, 4, 120, 26, 95, 92, 38.9, base)
    send(producer, later)
    assert wait_for(lambda: {e.event_id for e in later} <= r.snapshot().scored_ids, timeout=60)
    hours = [
        s["hour"]
        for (p, _), s in r.snapshot().last_scores.items()
        if p == pid and {e.event_id for e in later} & set(s["event_ids"])
    ]
    assert hours == [4]  # the stay's own hours, not a next stay's hour 0
