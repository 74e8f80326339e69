"""The worker steps each patient-hour once through the real broker and Redis: a provisional score
per batch inside an hour, one final score per closed hour, a late event for a closed hour replayed
from the carried boundary state, and the result equal to offline stepping of the same rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tests.conftest import unique_patient, wait_for
from vigil.infra.connect import consumer_from_now, redis_client
from vigil.infra.redis import PACKED, carry_key, window_key
from vigil.models.stream_step import load_served_bundle
from vigil.schemas import topics
from vigil.schemas.codes import DYNAMIC_CODES, canonical_unit
from vigil.schemas.events import PatientEvent

pytestmark = pytest.mark.integration

HOURS = 60


def vital_rows(rng: np.random.Generator) -> np.ndarray:
    rows = np.full((HOURS + 2, len(DYNAMIC_CODES)), np.nan, np.float32)
    for code, mean in {"HR": 90, "Resp": 20, "SBP": 115, "O2Sat": 96, "Temp": 37.4, "MAP": 80}.items():
        rows[:, DYNAMIC_CODES.index(code)] = mean + rng.normal(0, 0.05 * mean, len(rows))
    rows[::6, DYNAMIC_CODES.index("WBC")] = 11.0
    spo2 = DYNAMIC_CODES.index("O2Sat")
    rows[:, spo2] = np.minimum(rows[:, spo2], 99.0)  # a saturation above 100 % is dead-lettered
    return rows


def events_at(pid: str, rows: np.ndarray, hour: int, base: datetime) -> list[PatientEvent]:
    return [
        PatientEvent(
            patient_id=pid,
            observed_at=base + timedelta(hours=hour, minutes=10),
            kind="lab" if DYNAMIC_CODES[j] == "WBC" else "vital",
            code=DYNAMIC_CODES[j],
            value=float(rows[hour, j]),
            unit=canonical_unit(DYNAMIC_CODES[j]),
            source="test",
        )
        for j in np.flatnonzero(~np.isnan(rows[hour]))
    ]


def send_and_wait(producer, reader, events: list[PatientEvent]) -> None:
    for e in events:
        producer.send(topics.EVENTS_RAW, key=e.patient_id.encode(), value=e.model_dump_json().encode())
    producer.flush()
    ids = {e.event_id for e in events}
    assert wait_for(lambda: ids <= reader.snapshot().scored_ids, timeout=60)


def test_hours_are_stepped_once_and_a_late_event_replays(
    stack, stack_settings, shared_worker, producer, reader
) -> None:
    r = reader(keep_scores=False)
    scores: list[dict] = []
    pid = unique_patient("step")
    rows = vital_rows(np.random.default_rng(11))
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS + 5)
    consumer = consumer_from_now(stack_settings, (topics.SCORES,), consumer_timeout_ms=200)
    for hour in range(HOURS):
        hour_events = events_at(pid, rows, hour, base)
        # two batches inside the hour: two provisional scores of it
        send_and_wait(producer, r, hour_events[:3])
        send_and_wait(producer, r, hour_events[3:])
    # hour 60: a troponin drawn at hour 50 arrives late, with the hour's vitals
    late = PatientEvent(
        patient_id=pid,
        observed_at=base + timedelta(hours=50, minutes=59),
        kind="lab",
        code="TroponinI",
        value=9.0,
        unit=canonical_unit("TroponinI"),
        source="test",
    )
    # the late troponin goes first: Kafka keeps a key's order, so it is stepped no later than the
    # first vital of hour 60 that closes hour 59 (sent after them, a batch split let hour 59 close
    # without it: a correct score of what was known, but not what this test asserts)
    send_and_wait(producer, r, [late, *events_at(pid, rows, HOURS, base)])
    send_and_wait(producer, r, events_at(pid, rows, HOURS + 1, base))

    def collect() -> bool:
        for batch in consumer.poll(timeout_ms=200).values():
            scores.extend(d for d in (json.loads(m.value) for m in batch) if d["patient_id"] == pid)
        return sum(s["status"] == "final" for s in scores) >= HOURS + 1

    assert wait_for(collect, timeout=60)
    consumer.close()
    finals = {s["hour"]: s for s in scores if s["status"] == "final"}
    provisional = [s for s in scores if s["status"] == "provisional"]
    assert sorted(finals) == list(range(HOURS + 1)), "one final score per closed hour"
    assert len([s for s in scores if s["status"] == "final"]) == HOURS + 1, "and only one"
    assert all(s["schema_version"] == 2 and not s["event_ids"] for s in finals.values())
    assert {s["hour"] for s in provisional} == set(range(HOURS + 2))
    per_hour = [sum(s["hour"] == h for s in provisional) for h in range(HOURS)]
    assert min(per_hour) >= 2  # at least one per batch inside the hour (Kafka may split a send in two)

    bundle = load_served_bundle(prefer_gpu=False)
    known = rows.copy()
    before = bundle.stay_risks([known], [{}])[0].combined
    known[50, DYNAMIC_CODES.index("TroponinI")] = 9.0
    after = bundle.stay_risks([known], [{}])[0].combined

    def combined(score: dict) -> float:
        return next(m["probability"] for m in score["models"] if m["model"] == "combined")

    for hour in range(HOURS - 1):  # finalized before the late event: what was known then
        assert abs(combined(finals[hour]) - before[hour]) <= 1e-5, hour
    # hour 59 closed with the late troponin known (replayed from the boundary state)
    for hour in (HOURS - 1, HOURS):
        assert abs(combined(finals[hour]) - after[hour]) <= 1e-5, hour
    newest = [s for s in provisional if s["hour"] == HOURS + 1][-1]
    assert abs(combined(newest) - after[HOURS + 1]) <= 1e-5
    assert abs(after[HOURS] - before[HOURS]) > 1e-6, "the late troponin must change the score"

    client = redis_client(stack_settings)
    window, carry = client.memory_usage(window_key(pid)), client.memory_usage(carry_key(pid))
    assert client.get(window_key(pid))[0] == PACKED  # the worker scored from deflated state throughout
    client.close()
    assert carry and window and window + carry <= 4096
