"""Read the output topics back and account for every produced event (``lost`` is measured,
not assumed): an event is accounted for when a published score lists its id or the dead-letter
topic holds it (by id when it parses, else by the exact original bytes), or, for a discharge and
the events of its batch it left unscored, the stay-end record on ``vigil.stays`` names it."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from vigil.infra.connect import consumer_from_now
from vigil.infra.settings import Settings
from vigil.schemas import topics


def payload_digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


@dataclass
class Readback:
    scores: int = 0
    alerts: int = 0
    dead_letters: int = 0
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)
    alert_states: Counter[str] = field(default_factory=Counter)
    scored_ids: set[str] = field(default_factory=set)
    dead_ids: set[str] = field(default_factory=set)
    dead_digests: set[str] = field(default_factory=set)
    stays_ended: int = 0
    stays_resumed: int = 0  # cancelled discharges (their cancel is also named by the stay's next score)
    ended_ids: set[str] = field(default_factory=set)  # discharges and the events they left unscored
    stay_records: list[dict[str, Any]] = field(default_factory=list)
    score_event_counts: Counter[str] = field(default_factory=Counter)
    first_alert_at: float | None = None
    first_score_at: float | None = None
    latencies_ms: list[float] = field(default_factory=list)
    last_scores: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    alert_records: list[dict[str, Any]] = field(default_factory=list)

    def accounted(self, event_ids: set[str], bad_digests: set[str]) -> tuple[int, int]:
        ok = len(event_ids & (self.scored_ids | self.dead_ids | self.ended_ids))
        bad = len(bad_digests & self.dead_digests)
        return ok, bad

    def duplicates(self, event_ids: set[str] | None = None) -> int:
        """Extra score mentions of events (at-least-once copies), optionally of given events only."""
        counts = self.score_event_counts
        ids = counts.keys() if event_ids is None else event_ids
        return sum(counts[i] - 1 for i in ids if counts[i] > 1)


class TopicReader:
    """Background consumer of scores, alerts and dead letters from given start offsets."""

    def __init__(self, settings: Settings, keep_scores: bool = False) -> None:
        self.consumer = consumer_from_now(
            settings, (topics.SCORES, topics.ALERTS, topics.DEADLETTER, topics.STAYS), consumer_timeout_ms=200
        )
        self.result = Readback()
        self.keep_scores = keep_scores
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="vigil-readback", daemon=True)

    def start(self) -> TopicReader:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            batches = self.consumer.poll(timeout_ms=200, max_records=2000)
            with self._lock:
                for tp, records in batches.items():
                    for record in records:
                        self._absorb(tp.topic, record)

    def _absorb(self, topic: str, record: Any) -> None:
        r = self.result
        now = time.time()
        data = json.loads(record.value)
        if topic == topics.SCORES:
            r.scores += 1
            r.first_score_at = r.first_score_at or now
            for event_id in data["event_ids"]:
                r.scored_ids.add(event_id)
                r.score_event_counts[event_id] += 1
            if data.get("source_ts_ms"):
                r.latencies_ms.append(record.timestamp - data["source_ts_ms"])
            if self.keep_scores:
                r.last_scores[(data["patient_id"], data["hour"])] = data
        elif topic == topics.ALERTS:
            r.alerts += 1
            r.alert_states[data["state"]] += 1
            r.first_alert_at = r.first_alert_at or now
            r.alert_records.append(data)
        elif topic == topics.STAYS:
            r.stay_records.append(data)
            if data.get("record", "stay_ended") == "stay_resumed":
                r.stays_resumed += 1
            else:
                r.stays_ended += 1
                r.ended_ids.add(data["event_id"])
                r.ended_ids.update(data.get("unscored_event_ids", []))
        else:
            r.dead_letters += 1
            r.dead_letter_reasons[data["reason"]] += 1
            original = base64.b64decode(data["original_b64"])
            # a truncated copy (a too-large input) is matched by the whole original's digest
            r.dead_digests.add(data.get("original_sha256") or payload_digest(original))
            with contextlib.suppress(ValueError, KeyError, TypeError):
                r.dead_ids.add(json.loads(original)["event_id"])

    def snapshot(self) -> Readback:
        with self._lock:
            return self.result

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.consumer.close()
