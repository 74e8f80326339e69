"""What every phase of ``vigil bench`` shares: the pipeline's agents, preloading an input topic,
watching an output topic's timestamps and the dead letters of the bench's own events, waiting, and
starting each phase with no backlog left by another."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.infra.backlog import group_backlog
from vigil.infra.connect import consumer_from_now, kafka_producer
from vigil.infra.settings import Settings
from vigil.infra.workers import require_running, spawn_worker, stop_worker, worker_env
from vigil.schemas import topics

# The pipeline the goals are stated for: ingest -> state -> features -> models -> scores -> alerts
# (alerts are raised in the scoring step; the alert agent takes acknowledgements and its timer).
# Treatment scoring is a further consumer of vigil.scores; it is measured separately.
PIPELINE_AGENTS = ("ingest", "alert")
ALL_AGENTS = ("ingest", "alert", "treat", "interop")
# the bench's pipeline workers form their own consumer group: a worker already running on the stack
# (a demo's, a test session's) neither takes partitions from them nor is counted as one of them
BENCH_APP_ID = "vigil-bench"
# the bare-Faust baseline's topics and consumer group (``bench.baseline``)
BASELINE_IN = "vigil.bench.baseline.in"
BASELINE_OUT = "vigil.bench.baseline.out"
BASELINE_GROUP = "vigil-bench-baseline"
# the bench runs several workers at once: a /metrics or readiness port set for its own process (the
# environment `worker_env` hands on) was bound by the first of them, and every other exited 2 at start
UNSHARED_PORTS: dict[str, str | None] = {"VIGIL_METRICS_PORT": None, "VIGIL_HEALTH_PORT": None}
# how long a phase waits for its group to read what an earlier phase or run left on its input topic
# (the MLLP phase's 24,000 events take a worker ~10 s), and how often it asks the broker meanwhile
BACKLOG_TIMEOUT_S = 600.0
BACKLOG_POLL_S = 1.0


@dataclass
class OutputWatch:
    """Consumes an output topic from its current end; records per-message timestamps."""

    settings: Settings
    topic: str
    on_record: Callable[[Any], None] | None = None
    count: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> OutputWatch:
        self.consumer = consumer_from_now(self.settings, (self.topic,), fetch_max_wait_ms=20)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self.consumer.poll(timeout_ms=100, max_records=5000).values():
                for r in records:
                    self.count += 1
                    self.first_ts = r.timestamp if self.first_ts is None else min(self.first_ts, r.timestamp)
                    self.last_ts = r.timestamp if self.last_ts is None else max(self.last_ts, r.timestamp)
                    if self.on_record:
                        self.on_record(r)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.consumer.close()


@dataclass
class DeadLetterWatch:
    """The dead letters ingest writes for the bench's own events on ``vigil.events.raw``, by event
    id. A letter names its input's partition and offset, not an event id: each offered event's
    position comes from the producer's acknowledgement (``acknowledged``), and a letter may come
    before that acknowledgement, so they are matched when asked (``by_event``)."""

    settings: Settings
    positions: dict[tuple[int, int], str] = field(default_factory=dict)  # once acknowledged
    reasons_at: dict[tuple[int, int], str] = field(default_factory=dict)  # (partition, offset) -> reason

    def acknowledged(self, metadata: Any, event_id: str) -> None:
        self.positions[(metadata.partition, metadata.offset)] = event_id

    def absorb(self, record: Any) -> None:  # e.g. a twin of an earlier event: a "duplicate"
        letter = json.loads(record.value)
        if letter.get("source_topic") == topics.EVENTS_RAW:
            self.reasons_at.setdefault((letter.get("partition"), letter.get("offset")), letter.get("reason", ""))

    def by_event(self) -> dict[str, str]:
        """Event id -> dead-letter reason, for the letters whose event's position is known."""
        return {self.positions[at]: reason for at, reason in list(self.reasons_at.items()) if at in self.positions}

    def start(self) -> DeadLetterWatch:
        self.watch = OutputWatch(self.settings, topics.DEADLETTER, on_record=self.absorb).start()
        return self

    def stop(self) -> None:
        self.watch.stop()


def preload(
    settings: Settings,
    topic: str,
    messages: list[tuple[bytes, bytes]],
    on_ack: Callable[..., None] | None = None,
) -> None:
    """Produce ``messages`` at the producer's pace; ``on_ack(metadata, index=i)`` once the broker
    has the i-th (its partition and offset: what a dead letter names it by)."""
    producer = kafka_producer(settings, linger_ms=20, batch_size=256 * 1024)
    for i, (key, value) in enumerate(messages):
        future = producer.send(topic, key=key, value=value)
        if on_ack:
            future.add_callback(on_ack, index=i)
    producer.flush()
    producer.close()


@dataclass
class CollectorPauses:
    """The bench process's own garbage collections during a phase: a long one stalls the load
    generator's sends and takes a core from the worker on a 2-core machine."""

    durations_ms: list[float] = field(default_factory=list)
    _started: float = 0.0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.durations_ms.append((time.perf_counter() - self._started) * 1000)

    def summary(self) -> dict[str, float | int]:
        return {
            "collections": len(self.durations_ms),
            "max_ms": round(max(self.durations_ms, default=0.0), 1),
            "total_ms": round(sum(self.durations_ms), 1),
        }


@contextmanager
def quiet_collector() -> Iterator[CollectorPauses]:
    """Freeze what the bench process already holds (earlier phases' events and results: the
    collector then never walks it again) and record the collections that still happen."""
    gc.collect()
    gc.freeze()
    pauses = CollectorPauses()
    gc.callbacks.append(pauses._on_gc)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(pauses._on_gc)
        gc.unfreeze()


def settle(produced: Iterable[str], scored: Iterable[str], dead: Mapping[str, str]) -> tuple[dict[str, int], int]:
    """What became of the offered events that have no score: dead letters per reason (a twin of an
    earlier event is a ``duplicate``, a value outside its range ``out_of_range``) and how many are
    neither scored nor dead-lettered — the ones that would be lost."""
    unscored = set(produced) - set(scored)
    reasons: dict[str, int] = {}
    for event_id in unscored & dead.keys():
        reasons[dead[event_id]] = reasons.get(dead[event_id], 0) + 1
    return dict(sorted(reasons.items())), len(unscored - dead.keys())


def settled(produced: Iterable[str], scored: Iterable[str], dead: Mapping[str, str]) -> bool:
    """Every offered event is scored or dead-lettered: nothing more will come of them."""
    return settle(produced, scored, dead)[1] == 0


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def wait_for_no_backlog(settings: Settings, group: str, topic: str) -> dict[str, int]:
    """Wait, with ``group``'s workers running, until they have read everything on ``topic``: a phase
    measured from there counts only its own events. Events another phase left unread (the MLLP
    phase's, with no worker running) were read first by the next worker of the group, inside the
    next phase's span, and cut the 1-worker point of the curve to less than half (runs M1-M6).
    ``{"found": records at the start, "left": records still unread when it stopped waiting}``."""
    found = left = group_backlog(settings, group, topic)

    def read() -> bool:
        nonlocal left
        left = group_backlog(settings, group, topic)
        return left == 0

    if found:
        wait_until(read, timeout=BACKLOG_TIMEOUT_S, interval=BACKLOG_POLL_S)
    return {"found": found, "left": left}


def drain_backlog(
    settings: Settings, group: str, topic: str, spawn: Callable[[], subprocess.Popen[bytes]]
) -> dict[str, int]:
    """Before phases that preload ``topic`` and then start a worker of ``group``: a worker of the
    group reads what an earlier run left there (an MLLP phase, a run stopped halfway), so the
    phase's worker starts at its own events. Nothing is started when the group is up to date."""
    found = group_backlog(settings, group, topic)
    if not found:
        return {"found": 0, "left": 0}
    proc = spawn()
    try:
        return {**wait_for_no_backlog(settings, group, topic), "found": found}
    finally:
        stop_worker(proc)


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def bench_worker_env(extra: Mapping[str, str | None] | None = None) -> dict[str, str | None]:
    """What the bench sets for each worker it starts: ``extra``, and none of the parent's ports
    (``UNSHARED_PORTS``) unless ``extra`` names its own."""
    return {**UNSHARED_PORTS, **(extra or {})}


def require_all_running(workers: Iterable[tuple[subprocess.Popen[bytes], Path]]) -> None:
    """Stop the phase (one line: exit code and log) once one of its ``(worker, log)`` has ended,
    whatever its exit: nothing restarts a bench worker, and the phase would wait out its timeout,
    then report the figure of fewer workers than it says."""
    for proc, log in workers:
        require_running(proc, log, "a worker of the bench")


def unless_ended(
    ready: Callable[[], bool], workers: Iterable[tuple[subprocess.Popen[bytes], Path]]
) -> Callable[[], bool]:
    """``ready`` for ``wait_until``, which stops the phase once one of its ``(worker, log)`` has ended
    while it is not ready (``require_all_running``): a worker that died at start sends nothing more,
    and the split or the outputs waited for never come."""

    def check() -> bool:
        if ready():
            return True
        require_all_running(workers)
        return False

    return check


def events_per_s(accounted: int, span_s: float) -> float | None:
    """Events/s over the outputs' span: the events that span holds (scored or dead-lettered), not
    every event offered. A phase that timed out divided all 20,000 by the span of the few that came."""
    return accounted / span_s if span_s > 0 else None


def unsettled_phases(phases: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    """A sentence for each phase whose figure covers less than it seems to: it timed out, some of its
    events were neither scored nor dead-lettered, or its workers had not split the partitions when
    the load began (the figure is that of fewer workers)."""
    warnings = []
    for name, phase in phases.items():
        if not phase:
            continue
        why = []
        if phase.get("complete") is False:
            why.append("timed out")
        if phase.get("unaccounted"):
            why.append(f"{phase['unaccounted']:,} events neither scored nor dead-lettered")
        if phase.get("group_split_before_load") is False:
            why.append("its workers had not split the partitions when the load began")
        if why:
            warnings.append(f"{name}: {', '.join(why)}; its figures cover only the events accounted for")
    return warnings


def spawn_baseline(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """A bare-Faust worker (``bench.baseline``) connecting like ``settings``."""
    out = open(log, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        [sys.executable, "-m", "vigil.bench.baseline"],
        env=worker_env(settings, bench_worker_env()),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def spawn_pipeline(settings: Settings, log: Path, agents: tuple[str, ...] = PIPELINE_AGENTS) -> subprocess.Popen[bytes]:
    """A ``vigil worker`` running ``agents`` in the bench's consumer group."""
    return spawn_worker(settings, log, extra_env=bench_worker_env({"VIGIL_APP_ID": BENCH_APP_ID}), agents=agents)
