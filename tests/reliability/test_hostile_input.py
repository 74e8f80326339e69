"""Hostile input through a real broker and a real worker (issue 16): an oversized event between
valid ones, booleans and loose strings as vital signs, dates before the floor, spoofing characters
in identifiers, and twins. Each is dead-lettered with its reason and counted; nothing is lost."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import unique_patient, wait_for
from tests.reliability.helpers import report
from vigil.infra.health import read_health_file
from vigil.schemas import topics

pytestmark = pytest.mark.reliability

BIG_WARD_CHARS = 900_000  # the issue's ~900 kB event: over the ingest limit, under the broker's 1 MB


def _event(patient: str, at: datetime, code: str = "HR", value: object = 80, **extra: object) -> dict:
    units = {"HR": "/min", "Resp": "/min", "Temp": "Cel", "Age": "a"}
    kind = "demographic" if code == "Age" else "vital"
    return {
        "event_id": uuid.uuid4().hex,
        "patient_id": patient,
        "observed_at": at.isoformat(),
        "kind": kind,
        "code": code,
        "value": value,
        "unit": units.get(code, ""),
        "source": "hostile",
        **extra,
    }


def _bytes(event: dict) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


class HealthWatch:
    """Samples the worker's health file every 0.2 s; remembers whether it was ever not ready."""

    def __init__(self, path: Path) -> None:
        self.path, self.samples, self.not_ready = path, 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            state = read_health_file(self.path)
            if state is not None:
                self.samples += 1
                self.not_ready += state.get("ready") is not True

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


@pytest.fixture
def oversized_topic_allowed(stack) -> Iterator[None]:
    """The broker takes the 900 kB event (the issue's case): make sure vigil.events.raw allows it."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap, client_id="hostile-config")
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topics.EVENTS_RAW, configs={"max.message.bytes": "1048588"})
        admin.alter_configs([resource])
    finally:
        admin.close()
    yield


def test_an_oversized_event_is_dead_lettered_and_the_events_behind_it_are_scored(
    stack, started_worker, producer, reader, results_dir, tmp_path, oversized_topic_allowed
) -> None:
    health_file = tmp_path / "health.json"
    worker = started_worker("oversized", env={"VIGIL_HEALTH_FILE": str(health_file)})
    assert wait_for(lambda: (read_health_file(health_file) or {}).get("ready") is True, timeout=20)
    r = reader()
    patient = unique_patient("big")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=11)
    before = [_event(patient, start + timedelta(hours=h), value=80 + h) for h in range(5)]
    big = _bytes(_event(patient, start + timedelta(hours=5), ward="W" * BIG_WARD_CHARS))
    after = [_event(patient, start + timedelta(hours=6 + h), value=90 + h) for h in range(5)]
    valid_ids = {e["event_id"] for e in before + after}
    with HealthWatch(health_file) as watch:
        for payload in [*map(_bytes, before), big, *map(_bytes, after)]:
            producer.send(topics.EVENTS_RAW, key=patient.encode(), value=payload)  # one key: one partition, in order
        producer.flush()
        big_digest = hashlib.sha256(big).hexdigest()

        def accounted() -> tuple[int, int]:
            rb = r.snapshot()
            return len(valid_ids & rb.scored_ids), int(big_digest in rb.dead_digests)

        done = wait_for(lambda: accounted() == (10, 1), timeout=60)
        time.sleep(1.0)  # a few more health samples after the big one went through
    rb = r.snapshot()
    scored, dead = accounted()
    counts = {
        "valid_sent": len(valid_ids),
        "valid_scored": scored,
        "oversized_bytes": len(big),
        "oversized_dead_lettered": dead,
        "accounted": scored + dead,
        "lost": len(valid_ids) + 1 - scored - dead,
        "dead_letter_reasons": dict(rb.dead_letter_reasons),
        "health_samples": watch.samples,
        "health_not_ready_samples": watch.not_ready,
        "worker_alive": worker.poll() is None,
    }
    report(results_dir, "hostile_oversized", counts)
    assert done, counts
    assert rb.dead_letter_reasons["too_large"] >= 1
    assert counts["worker_alive"] and watch.samples > 5 and watch.not_ready == 0, counts


def test_loose_values_old_dates_and_spoofed_identifiers_are_dead_lettered(
    stack, started_worker, producer, reader, results_dir
) -> None:
    started_worker("strict")
    r = reader(keep_scores=True)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    bad_patient = unique_patient("loose")
    spoof = unique_patient("spoof")
    bad = {
        "boolean_true": _event(bad_patient, now, value=True),
        "boolean_false": _event(bad_patient, now, value=False),
        "underscore_string": _event(bad_patient, now, value="8_5"),
        "numeric_string": _event(bad_patient, now, value="85"),
        "year_1": _event(bad_patient, datetime(1, 1, 1, tzinfo=UTC)),
        "epoch_1970": _event(bad_patient, datetime(1970, 1, 1, tzinfo=UTC)),
        "rlo_patient": _event("\u202eLIAMS-nhoJ", now),
        "zero_width_patient": _event(spoof + "\u200b", now),
        "del_patient": _event(spoof + "\x7f", now),
        "nul_ward": _event(spoof, now, ward="ICU\x00"),
        "esc_ward": _event(spoof, now, ward="\x1b[31mICU"),
        "bidi_code": _event(spoof, now, code="H\u202eR"),
    }
    # a valid patient whose year-1 and 1995 Age events must not move its hour 0
    anchored = unique_patient("anchor")
    # 10 minutes into an hour, so the second event (65 minutes later) is in hour 1 at any time of day
    t0 = (now - timedelta(hours=2)).replace(minute=10, second=0)
    valid = [
        _event(anchored, t0),
        _event(anchored, datetime(1995, 6, 1, tzinfo=UTC), code="Age", value=70),
        _event(anchored, t0 + timedelta(hours=1, minutes=5), value=95),
    ]
    bad["year_1_age"] = _event(anchored, datetime(1, 1, 1, tzinfo=UTC), code="Age", value=70)
    for payload in [*map(_bytes, bad.values()), *map(_bytes, valid)]:
        producer.send(topics.EVENTS_RAW, key=b"hostile-strict", value=payload)
    producer.flush()
    digests = {name: hashlib.sha256(_bytes(e)).hexdigest() for name, e in bad.items()}
    valid_ids = {e["event_id"] for e in valid}

    def done() -> bool:
        rb = r.snapshot()
        return set(digests.values()) <= rb.dead_digests and valid_ids <= rb.scored_ids

    ok = wait_for(done, timeout=60)
    rb = r.snapshot()
    hours = sorted(h for (pid, h) in rb.last_scores if pid == anchored)
    counts = {
        "bad_sent": len(bad),
        "bad_dead_lettered": sum(d in rb.dead_digests for d in digests.values()),
        "valid_scored": len(valid_ids & rb.scored_ids),
        "scores_for_loose_patient": sum(1 for pid, _ in rb.last_scores if pid == bad_patient),
        "anchored_patient_hours": hours,
        "dead_letter_reasons": dict(rb.dead_letter_reasons),
    }
    report(results_dir, "hostile_strict", counts)
    assert ok, counts
    assert counts["scores_for_loose_patient"] == 0  # `true` is not a heart rate of 1
    # one batch may score both hours at once: the newest score is hour 1, never 17,758,817
    assert hours and max(hours) == 1, counts
    assert rb.dead_letter_reasons["schema"] >= len(bad)


def test_twins_are_counted_as_duplicates_not_lost(stack, started_worker, producer, reader, results_dir) -> None:
    started_worker("twins")
    r = reader()
    patient = unique_patient("twin")
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    first = _event(patient, at, value=101)
    twin = {**first, "event_id": uuid.uuid4().hex}  # same patient, time, code and value; a new id
    copy = dict(first)  # the same event re-sent by its producer (same id, a new message)
    change = _event(patient, at + timedelta(minutes=1), value=102)
    for event in (first, twin, copy, change):
        producer.send(topics.EVENTS_RAW, key=patient.encode(), value=_bytes(event))
    producer.flush()
    ids = {first["event_id"], twin["event_id"], change["event_id"]}

    def accounted() -> int:
        rb = r.snapshot()
        return len(ids & (rb.scored_ids | rb.dead_ids))

    ok = wait_for(lambda: accounted() == 3 and r.snapshot().dead_letter_reasons["duplicate"] >= 2, timeout=60)
    rb = r.snapshot()
    counts = {
        "events": 4,
        "distinct_ids": len(ids),
        "scored": len(ids & rb.scored_ids),
        "duplicate_dead_letters": rb.dead_letter_reasons["duplicate"],
        "twin_in_dead_letters": twin["event_id"] in rb.dead_ids,
        "lost": len(ids) - accounted(),
    }
    report(results_dir, "hostile_twins", counts)
    assert ok, counts
    assert first["event_id"] in rb.scored_ids and change["event_id"] in rb.scored_ids
    assert twin["event_id"] in rb.dead_ids and twin["event_id"] not in rb.scored_ids
    assert rb.score_event_counts[first["event_id"]] == 1  # the re-sent copy did not score twice
