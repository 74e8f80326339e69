"""vigil_closed_hours_total on the real broker and Redis: each patient-hour counted once. An
observation older than the stay's first re-anchors the window, and the worker finalizes every hour
of it again (their final scores go out again, corrected), and so does a cancelled discharge that
folds the next stay back; the count takes only the hours that close for the first time
(``models.stream_step.first_closings``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import unique_patient, wait_for
from vigil.cli.demo import worker_drift
from vigil.infra.ports import free_port
from vigil.schemas import topics
from vigil.schemas.events import PatientEvent

pytestmark = pytest.mark.integration


def closed_hours(port: int, ward: str) -> float:
    """The ward's vigil_closed_hours_total, both sides of the threshold, on the worker's /metrics
    (read as `vigil demo` reads it)."""
    wards, _ = worker_drift(port)
    return wards.get(ward, {}).get("closed_hours", -1.0)


def test_each_patient_hour_is_counted_once_though_the_stay_re_anchors_and_folds_back(
    stack, shared_worker, spawn, producer, reader
) -> None:
    r = reader(keep_scores=True)
    pid, ward, port = unique_patient("counted"), f"CNT-{uuid.uuid4().hex[:8]}", free_port()
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=10)

    def send(event: PatientEvent) -> None:
        producer.send(topics.EVENTS_RAW, key=pid.encode(), value=event.model_dump_json().encode())
        producer.flush()

    def heart_rate(hour: int, value: float) -> None:
        at = base + timedelta(hours=hour, minutes=10)
        event = PatientEvent(
            patient_id=pid, observed_at=at, kind="vital", code="HR", value=value, unit="/min", source="test", ward=ward
        )
        send(event)
        assert wait_for(lambda: event.event_id in r.snapshot().scored_ids, timeout=90), f"hour {hour} scored"

    def stay_record(code: str, hour: int, minute: int, record: str) -> None:
        at = base + timedelta(hours=hour, minutes=minute)
        send(PatientEvent(patient_id=pid, observed_at=at, kind="encounter", code=code, value=1.0, source="test"))
        records = lambda: [s for s in r.snapshot().stay_records if s["patient_id"] == pid and s.get("record") == record]  # noqa: E731
        assert wait_for(records, timeout=60), f"no {record}: {dict(r.snapshot().dead_letter_reasons)}"

    with shared_worker.stopped():  # this test's worker owns every partition and serves /metrics
        spawn("counted", env={"VIGIL_METRICS_PORT": str(port)})
        for hour in range(5):  # hours 0..3 close, 4 is open
            heart_rate(hour, 80.0 + hour)
        heart_rate(-2, 90.0)  # drawn before the first: hour 0 moves back two hours, every hour closes again
        heart_rate(5, 86.0)  # hour 4 closes
        # seven clock hours closed (-2, -1, 0..4); counting each finalizing would make it 4 + 6 + 1 = 11
        assert wait_for(lambda: closed_hours(port, ward) == 7.0, timeout=30), closed_hours(port, ward)
        finals = {h for (p, h), s in r.snapshot().last_scores.items() if p == pid and s.get("status") == "final"}
        assert finals == set(range(7))  # every hour's final score, in the new hour numbering
        # a discharge in error at 5:30, the next stay from 7:10 (its hours 7 and 8 close), then the
        # cancel: the resumed stay finalizes 5..8 (hours 5 and 6 were never closed, 7 and 8 were)
        stay_record("discharge", 5, 30, "stay_ended")
        for hour in (7, 8, 9):
            heart_rate(hour, 88.0)
        assert wait_for(lambda: closed_hours(port, ward) == 9.0, timeout=30), closed_hours(port, ward)
        stay_record("cancel_discharge", 9, 20, "stay_resumed")
        # eleven clock hours closed (-2..8); counting each finalizing would make it 9 + 4 = 13
        assert wait_for(lambda: closed_hours(port, ward) == 11.0, timeout=30), closed_hours(port, ward)
