"""Helpers for the fault tests: synthetic ward streams, paced producers, offsets, RSS, counts."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from vigil.schemas import topics
from vigil.schemas.events import PatientEvent

GROUP = "vigil"  # the Faust app id is the consumer group

# (code, unit, normal value, value after full deterioration): NEWS2 reaches >= 7 (RCP 2017)
_VITALS = (
    ("HR", "/min", 78.0, 136.0),
    ("Resp", "/min", 15.0, 28.0),
    ("SBP", "mm[Hg]", 124.0, 88.0),
    ("O2Sat", "%", 97.0, 89.0),
    ("Temp", "Cel", 36.9, 39.4),
)


def ward_stream(
    prefix: str, patients: int, hours: int, deteriorate_every: int = 3, start: datetime | None = None
) -> list[PatientEvent]:
    """Hour by hour, every patient's five vitals (as a ward's monitors would send them);
    every ``deteriorate_every``-th patient drifts towards NEWS2 >= 7 over the stay."""
    import uuid

    run = uuid.uuid4().hex[:8]
    base = start or datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours + 1)
    events: list[PatientEvent] = []
    for hour in range(hours):
        for p in range(patients):
            pid = f"{prefix}-{run}-{p:04d}"
            worse = p % deteriorate_every == 0
            frac = hour / max(hours - 1, 1) if worse else 0.0
            at = base + timedelta(hours=hour, minutes=10 + p % 40)
            for code, unit, normal, bad in _VITALS:
                value = round(normal + (bad - normal) * frac + ((p + hour) % 3 - 1) * 0.5, 1)
                events.append(
                    PatientEvent(
                        patient_id=pid,
                        observed_at=at,
                        kind="vital",
                        code=code,
                        value=value,
                        unit=unit,
                        source="reliability",
                    )
                )
    return events


@dataclass
class PacedProducer:
    """Sends events to ``vigil.events.raw`` from a thread at ``rate_per_s`` (0 = as fast as possible),
    retrying each send until the broker takes it (a broker restart must not drop input)."""

    producer: Any
    payloads: list[tuple[bytes, bytes]]
    rate_per_s: float = 0.0
    sent: int = 0
    send_errors: int = 0  # send() refused (buffer full), retried
    delivery_failures: int = 0  # the producer gave up on a record (must stay 0)
    done: threading.Event = field(default_factory=threading.Event)
    finished_at: float | None = None

    def start(self) -> PacedProducer:
        threading.Thread(target=self._run, name="paced-producer", daemon=True).start()
        return self

    def _failed(self, _exc: Exception) -> None:
        self.delivery_failures += 1

    def _run(self) -> None:
        t0 = time.monotonic()
        for i, (key, value) in enumerate(self.payloads):
            if self.rate_per_s:
                delay = t0 + i / self.rate_per_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            while True:
                try:
                    future = self.producer.send(topics.EVENTS_RAW, key=key, value=value)
                    future.add_errback(self._failed)
                    break
                except Exception:  # buffer full while the broker is away: wait and retry
                    self.send_errors += 1
                    time.sleep(0.2)
            self.sent += 1
        self.producer.flush()
        self.finished_at = time.monotonic()
        self.done.set()


def gateway_producer(settings: Any) -> Any:
    """The producer of a bedside gateway: acks=all, retrying for as long as a broker may be away."""
    from vigil.infra.connect import kafka_producer

    return kafka_producer(
        settings,
        linger_ms=5,
        retries=2**31 - 1,
        delivery_timeout_ms=180_000,
        request_timeout_ms=15_000,
        max_block_ms=120_000,
        reconnect_backoff_max_ms=2000,
    )


def event_payloads(events: list[PatientEvent]) -> list[tuple[bytes, bytes]]:
    return [(e.patient_id.encode(), e.model_dump_json().encode()) for e in events]


def rss_kb(pid: int) -> int | None:
    """Resident set size of a process from /proc (Linux), in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def committed_offsets(settings: Any, topic: str, group: str = GROUP) -> dict[int, int]:
    from vigil.infra.connect import kafka_admin

    admin = kafka_admin(settings, client_id="reliability-offsets")
    try:
        offsets = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


def end_offsets(settings: Any, topic: str) -> dict[int, int]:
    from kafka import TopicPartition

    from vigil.infra.connect import kafka_consumer

    consumer = kafka_consumer(settings, group_id=None)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        return {tp.partition: off for tp, off in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def lag(settings: Any, topic: str) -> int:
    ends, done = end_offsets(settings, topic), committed_offsets(settings, topic)
    return sum(max(end - done.get(p, 0), 0) for p, end in ends.items())


def alert_duplicates(alert_records: list[dict[str, Any]], patients: set[str]) -> dict[str, int]:
    """Alert transitions on the topic for ``patients``: raw count, copies of one transition
    (at-least-once), and duplicate *alerts* left after deduplicating by ``transition_id``
    (two different transitions to the same state of the same alert)."""
    mine = [a for a in alert_records if a["patient_id"] in patients]
    by_transition = {a["transition_id"]: a for a in mine}
    per_state = Counter((a["alert_id"], a["state"]) for a in by_transition.values())
    return {
        "alert_transitions": len(mine),
        "alert_transition_copies": len(mine) - len(by_transition),
        "alerts_opened": sum(1 for a in by_transition.values() if a["state"] == "open"),
        "duplicate_alerts_after_dedup": sum(c - 1 for c in per_state.values() if c > 1),
    }


def report(results_dir: Path, name: str, counts: dict[str, Any]) -> None:
    """Print the counts (pytest -s shows them) and write them as JSON for CI and the docs."""
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(json.dumps(counts, indent=2, sort_keys=True, default=str))
    print(f"\n[reliability] {name}: " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def restart_broker(settings: Any, node: int | None = None) -> None:
    """Stop the embedded broker (SIGTERM: a controlled shutdown) and start it again on the same
    ports and log dirs; ``node`` = one node of an embedded cluster."""
    from vigil.infra.stack.kafka import start_kafka, stop_kafka

    stop_kafka(settings, only=node)
    start_kafka(settings, only=node)


def kill_broker(settings: Any, node: int) -> int:
    """SIGKILL one embedded broker node (no controlled shutdown); returns its pid."""
    import signal

    from vigil.infra.stack.kafka import node_pid_file
    from vigil.infra.stack.processes import pid_alive

    pid = pid_alive(node_pid_file(settings, node))
    assert pid, f"broker node {node} is not running"
    os.kill(pid, signal.SIGKILL)
    return pid
