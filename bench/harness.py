"""What every phase of ``vigil bench`` shares: the pipeline's agents, preloading an input topic,
watching an output topic's timestamps, waiting."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.infra.connect import consumer_from_now, kafka_producer
from vigil.infra.settings import Settings
from vigil.infra.workers import spawn_worker, worker_env

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


def preload(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = kafka_producer(settings, linger_ms=20, batch_size=256 * 1024)
    for key, value in messages:
        producer.send(topic, key=key, value=value)
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


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def spawn_baseline(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """A bare-Faust worker (``bench.baseline``) connecting like ``settings``."""
    out = open(log, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        [sys.executable, "-m", "vigil.bench.baseline"],
        env=worker_env(settings),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def spawn_pipeline(settings: Settings, log: Path, agents: tuple[str, ...] = PIPELINE_AGENTS) -> subprocess.Popen[bytes]:
    """A ``vigil worker`` running ``agents`` in the bench's consumer group."""
    return spawn_worker(settings, log, extra_env={"VIGIL_APP_ID": BENCH_APP_ID}, agents=agents)
