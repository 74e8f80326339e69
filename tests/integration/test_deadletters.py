"""`vigil deadletters` on the real broker, with the session's worker: a letter whose cause is fixed
is sent again and scored, once; what may not go again stays; every replay is on vigil.audit."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import unique_patient, wait_for
from vigil.infra.deadletters import read_replayed
from vigil.infra.workers import worker_env
from vigil.schemas import topics
from vigil.schemas.deadletter import DeadLetter, Rejected, Source
from vigil.schemas.events import PatientEvent

pytestmark = pytest.mark.integration
VIGIL = str(Path(sys.executable).with_name("vigil"))


def vigil_json(stack_settings, *args: str) -> dict:  # type: ignore[type-arg]
    proc = subprocess.run(
        [VIGIL, "deadletters", *args, "--json"],
        env=worker_env(stack_settings),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_a_letter_whose_cause_is_fixed_is_scored_once_and_the_rest_stay(
    stack, stack_settings, shared_worker, producer, reader
) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    pid = unique_patient("dlq")
    at = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    event = PatientEvent(patient_id=pid, observed_at=at, kind="vital", code="HR", value=97, unit="/min", source="test")
    original = event.model_dump_json().encode()

    def publish(reason: str, topic: str, payload: bytes, budget: int | None = None) -> tuple[int, int]:
        rejected = Rejected(
            reason, "a worker too old for this patient's state", Source(topic, 0, 1, pid.encode(), payload)
        )
        record = DeadLetter.of(rejected, datetime.now(UTC), **({"budget": budget} if budget else {}))
        meta = producer.send(topics.DEADLETTER, key=pid.encode(), value=record.model_dump_json().encode()).get(30)
        return meta.partition, meta.offset

    good = publish("internal", topics.EVENTS_RAW, original)  # a valid event a worker could not apply
    publish("internal", topics.EVENTS_RAW, original + b" " * 4000, budget=2000)  # only its first bytes kept
    publish("internal", topics.SCORES, b'{"patient_id": "x"}')  # Vigil's own output: never acted on late
    publish("unit", topics.EVENTS_RAW, original)  # another reason: not asked for
    producer.flush()

    listed = vigil_json(stack_settings, "ls", "--reason", "internal", "--since", since)
    assert listed["by_reason"] == {"internal": 3} and listed["replayable"] == {"internal": 1}
    assert listed["by_source"] == {topics.EVENTS_RAW: 2, topics.SCORES: 1}
    assert "97" not in json.dumps(listed["newest"])  # the original's content is never shown

    r = reader()
    dry = vigil_json(stack_settings, "replay", "--reason", "internal", "--since", since, "--dry-run")
    assert dry["would_send"] == 1 and dry["sent"] == 0 and dry["audited"] is False
    assert good not in read_replayed(stack_settings)

    sent = vigil_json(stack_settings, "replay", "--reason", "internal", "--since", since)
    assert sent["sent"] == 1 and sent["by_topic"] == {topics.EVENTS_RAW: 1}
    assert sent["skipped"] == {"truncated": 1, "not_an_input": 1} and sent["audited"] is True
    assert wait_for(lambda: event.event_id in r.snapshot().scored_ids, timeout=60), "the event sent again is scored"
    assert good in read_replayed(stack_settings)

    again = vigil_json(stack_settings, "replay", "--reason", "internal", "--since", since)
    assert again["sent"] == 0 and again["skipped"]["replayed_before"] == 1

    # told to send it once more, the event is not scored twice: it is a duplicate dead letter
    forced = vigil_json(stack_settings, "replay", "--reason", "internal", "--since", since, "--again")
    assert forced["sent"] == 1
    assert wait_for(lambda: event.event_id in r.snapshot().dead_ids, timeout=60)
    assert r.snapshot().dead_letter_reasons["duplicate"] >= 1
    assert r.snapshot().score_event_counts[event.event_id] == 1
