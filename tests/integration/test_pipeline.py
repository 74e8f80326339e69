"""End to end on the real broker and Redis: events in, scores/alerts/dead letters out, none lost."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import unique_patient, wait_for
from vigil.infra.connect import consumer_from_now, redis_client
from vigil.infra.readback import payload_digest
from vigil.infra.redis import alert_key
from vigil.models.alerting import PatientAlertState
from vigil.schemas import topics
from vigil.schemas.alerts import AlertAck
from vigil.schemas.events import PatientEvent

pytestmark = pytest.mark.integration


def vitals(
    pid: str, hour: int, hr: float, rr: float, sbp: float, spo2: float, temp: float, base: datetime
) -> list[PatientEvent]:
    at = base + timedelta(hours=hour, minutes=10)
    codes = {
        "HR": (hr, "/min"),
        "Resp": (rr, "/min"),
        "SBP": (sbp, "mm[Hg]"),
        "O2Sat": (spo2, "%"),
        "Temp": (temp, "Cel"),
    }
    return [
        PatientEvent(patient_id=pid, observed_at=at, kind="vital", code=c, value=v, unit=u, source="test")
        for c, (v, u) in codes.items()
    ]


def send(producer, events: list[PatientEvent]) -> None:
    for e in events:
        producer.send(topics.EVENTS_RAW, key=e.patient_id.encode(), value=e.model_dump_json().encode())
    producer.flush()


def test_deteriorating_patient_gets_scores_and_one_alert(stack, shared_worker, producer, reader) -> None:
    r = reader(keep_scores=True)
    pid = unique_patient("det")
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=6)
    events = vitals(pid, 0, 80, 16, 125, 97, 37.0, base)
    events += vitals(pid, 1, 96, 22, 108, 94, 38.3, base)  # NEWS2 5 -> medium
    events += vitals(pid, 2, 135, 27, 88, 90, 39.4, base)  # NEWS2 >= 7 -> high
    for hour_events in (events[:5], events[5:10], events[10:]):
        send(producer, hour_events)
        # let the worker score each hour before the next, as a bedside monitor would
        wait_for(lambda ids={e.event_id for e in hour_events}: ids <= r.snapshot().scored_ids, timeout=60)
    ids = {e.event_id for e in events}
    assert wait_for(lambda: ids <= r.snapshot().scored_ids, timeout=90), "every event must be scored"

    def mine() -> list[dict]:
        return [a for a in r.snapshot().alert_records if a["patient_id"] == pid]

    assert wait_for(lambda: any(a["severity"] == "high" for a in mine()), timeout=60)
    rb = r.snapshot()
    mine = mine()
    assert [a["state"] for a in mine][:1] == ["open"]
    assert mine[-1]["severity"] == "high"
    assert len([a for a in mine if a["state"] == "open"]) == 1  # one alert, then an escalation
    last = max((s for (p, _), s in rb.last_scores.items() if p == pid), key=lambda s: s["hour"])
    assert last["news2"]["total"] >= 7 and "consciousness" in last["news2"]["missing"]
    assert rb.duplicates() == 0


def test_an_event_without_a_ward_is_scored_in_the_patients_ward(stack, shared_worker, producer, reader) -> None:
    """The ward is kept in the patient's state: a lab from a system that does not know the bed is
    scored (and counted, and drift-tracked) in the ward the bedside events named."""
    r = reader(keep_scores=True)
    pid = unique_patient("ward")
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    bedside = [e.model_copy(update={"ward": "ICU-W"}) for e in vitals(pid, 0, 82, 16, 124, 97, 37.0, base)]
    send(producer, bedside)
    assert wait_for(lambda: {e.event_id for e in bedside} <= r.snapshot().scored_ids, timeout=60)
    lab = PatientEvent(
        patient_id=pid,
        observed_at=base + timedelta(hours=1, minutes=20),
        kind="lab",
        code="Lactate",
        value=2.5,
        unit="mmol/L",
        source="lis",
    )
    assert lab.ward is None
    send(producer, [lab])
    assert wait_for(lambda: lab.event_id in r.snapshot().scored_ids, timeout=60)
    score = r.snapshot().last_scores[(pid, 1)]
    assert lab.event_id in score["event_ids"] and score["ward"] == "ICU-W"


def test_bad_input_is_dead_lettered_and_never_blocks_the_partition(stack, shared_worker, producer, reader) -> None:
    r = reader()
    pid = unique_patient("bad")
    now = datetime.now(UTC)
    bad = [
        b"{broken",
        json.dumps(
            {
                "patient_id": pid,
                "observed_at": now.isoformat(),
                "kind": "vital",
                "code": "HR",
                "value": 80,
                "unit": "parsecs",
            }
        ).encode(),
        json.dumps(
            {
                "patient_id": pid,
                "observed_at": now.isoformat(),
                "kind": "vital",
                "code": "HR",
                "value": -5,
                "unit": "/min",
            }
        ).encode(),
        json.dumps(
            {
                "patient_id": pid,
                "observed_at": (now + timedelta(days=1)).isoformat(),
                "kind": "vital",
                "code": "HR",
                "value": 80,
                "unit": "/min",
            }
        ).encode(),
        json.dumps(
            {"patient_id": pid, "observed_at": now.isoformat(), "kind": "vital", "code": "Zzz", "value": 1}
        ).encode(),
        b"\xff\xfe\x00garbage",
    ]
    for payload in bad:
        producer.send(topics.EVENTS_RAW, key=pid.encode(), value=payload)
    good = PatientEvent(
        patient_id=pid, observed_at=now - timedelta(minutes=5), kind="vital", code="HR", value=88, unit="/min"
    )
    send(producer, [good])
    digests = {payload_digest(p) for p in bad}
    assert wait_for(
        lambda: digests <= r.snapshot().dead_digests and good.event_id in r.snapshot().scored_ids, timeout=90
    )
    reasons = r.snapshot().dead_letter_reasons
    for reason in ("invalid_json", "unit", "out_of_range", "clock_skew", "unknown_code"):
        assert reasons[reason] >= 1, reasons
    assert shared_worker.poll() is None, "the worker must survive bad input"


def test_acknowledgement_transitions_and_is_audited(
    stack, stack_settings, stack_home, shared_worker, producer, reader
) -> None:
    r = reader()
    pid = unique_patient("ack")
    base = datetime.now(UTC) - timedelta(hours=2)
    first = vitals(pid, 0, 140, 30, 85, 88, 39.5, base)
    send(producer, first)
    assert wait_for(lambda: {e.event_id for e in first} <= r.snapshot().scored_ids, timeout=90)
    assert wait_for(lambda: any(a["patient_id"] == pid for a in r.snapshot().alert_records), timeout=30)
    time.sleep(1)  # the hour's last transition (its events may have come in two batches)
    alert = [a for a in r.snapshot().alert_records if a["patient_id"] == pid][-1]
    audit = consumer_from_now(stack_settings, (topics.AUDIT,))
    ack = AlertAck(alert_id=alert["alert_id"], patient_id=pid, action="acknowledge", by="nurse.a", at=datetime.now(UTC))
    producer.send(topics.ALERT_ACKS, key=pid.encode(), value=ack.model_dump_json().encode())
    producer.flush()
    assert wait_for(
        lambda: any(a["patient_id"] == pid and a["state"] == "acknowledged" for a in r.snapshot().alert_records),
        timeout=60,
    )
    records = []
    wait_for(
        lambda: (
            records.extend(m.value for batch in audit.poll(500).values() for m in batch)
            or any(b"nurse.a" in v for v in records)
        ),
        timeout=30,
    )
    audit.close()
    assert any(json.loads(v)["alert_id"] == alert["alert_id"] for v in records)

    # the same acknowledgement again (a paging system's retry) changes nothing, and the worker says so
    producer.send(topics.ALERT_ACKS, key=pid.encode(), value=ack.model_dump_json().encode())
    producer.flush()
    worker_log = stack_home / "logs" / "shared-worker.log"
    assert wait_for(
        lambda: any(
            "alert.answer_unapplied" in line and alert["alert_id"][:8] in line and "already" in line
            for line in worker_log.read_text(errors="replace").splitlines()
        ),
        timeout=30,
    )

    # the scoring step, which raises alerts in the batch that scored them, sees the alert agent's
    # acknowledgement: a further hour as bad neither re-opens nor pages again, and the lifecycle
    # in Redis still holds the acknowledged alert
    later = vitals(pid, 1, 141, 30, 85, 88, 39.5, base)
    send(producer, later)
    assert wait_for(lambda: {e.event_id for e in later} <= r.snapshot().scored_ids, timeout=60)
    time.sleep(1)  # any transition of that batch is published before its scores are acknowledged
    states = [a["state"] for a in r.snapshot().alert_records if a["patient_id"] == pid]
    assert states[-1] == "acknowledged", states
    admin = redis_client(stack_settings, admin=True, socket_timeout=2)
    state = PatientAlertState.from_bytes(admin.get(alert_key(pid)))
    admin.close()
    assert state.active is not None and state.active.state == "acknowledged" and state.active.acked_by == "nurse.a"
    assert len(state.trend) == 2  # both hours' provisional scores reached the lifecycle
