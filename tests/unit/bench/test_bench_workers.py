"""The bench's workers: none inherits the parent's /metrics or readiness port (the first bound it and
every other exited 2), one that ends stops the phase with its exit code and log (the phase waited out
its timeout, then reported the figure of fewer workers than it said), a stop (Ctrl-C, SIGTERM) stops
every one started (they run in their own session), and a phase that timed out reports the events/s
of the events it accounted for, not of all it offered. Stand-ins for the broker, the workers and the
watches: the real measurement runs against a stack."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import vigil.bench.churn as churn
import vigil.bench.harness as harness
import vigil.bench.run as run
import vigil.bench.scaleout as scaleout
from vigil.infra import workers
from vigil.infra.settings import Settings
from vigil.schemas import topics
from vigil.schemas.errors import UserError

REAL_WAIT_UNTIL = harness.wait_until
LOGS = Path("/nonexistent/logs")


def short_wait(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    return REAL_WAIT_UNTIL(predicate, min(timeout, 0.5), interval=0.01)


class Worker:
    """A spawned worker: running until ``returncode`` is set; ``stopped`` once the bench stops it."""

    def __init__(self, returncode: int | None = None) -> None:
        self.pid, self.returncode, self.stopped = 0, returncode, False

    def poll(self) -> int | None:
        return self.returncode


@dataclass
class Bench:
    """The workers the phases start, in order, and how each of the next ones ends (running if none)."""

    started: list[Worker] = field(default_factory=list)
    exits: list[int | None] = field(default_factory=list)

    def spawn(self, settings: Settings, log: Path, *args: Any, **kwargs: Any) -> Worker:
        self.started.append(Worker(self.exits.pop(0) if self.exits else None))
        return self.started[-1]

    def stop(self, worker: Worker) -> int | None:
        worker.stopped = True
        return worker.returncode

    def split_among(self, settings: Settings, group: str, topic: str, n: int, partitions: int) -> bool:
        return len(self.started) == n and all(w.poll() is None for w in self.started)


class Watch:
    """An output topic's watch that saw one output for each of ``scored``, over ``span_ms``."""

    scored: list[str] = []
    span_ms = 2_000

    def __init__(self, settings: Settings, topic: str = "", on_record: Any = None) -> None:
        self.topic, self.on_record = topic, on_record
        self.count = 0
        self.first_ts: int | None = None
        self.last_ts: int | None = None

    def start(self) -> Watch:
        if self.topic != topics.DEADLETTER and Watch.scored:
            self.count, self.first_ts, self.last_ts = len(Watch.scored), 1_000_000, 1_000_000 + Watch.span_ms
            for eid in Watch.scored:
                if self.on_record:
                    self.on_record(SimpleNamespace(value=json.dumps({"event_ids": [eid]}).encode(), timestamp=0))
        return self

    def stop(self) -> None:
        pass


def events(n: int) -> list[tuple[str, bytes, bytes]]:
    return [(f"e{i}", f"p{i % 7}".encode(), b"{}") for i in range(n)]


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Bench:
    """The phases' collaborators replaced by stand-ins."""
    stand_in = Bench()
    Watch.scored = []
    for module in (run, scaleout):
        monkeypatch.setattr(module, "wait_until", short_wait)
        monkeypatch.setattr(module, "OutputWatch", Watch)
        monkeypatch.setattr(module, "preload", lambda *args, **kwargs: None)
        monkeypatch.setattr(module, "spawn_pipeline", stand_in.spawn)
        monkeypatch.setattr(module, "spawn_baseline", stand_in.spawn)
        monkeypatch.setattr(module, "stop_worker", stand_in.stop)
        monkeypatch.setattr(module, "sample", lambda settings, pids: None)
        monkeypatch.setattr(module, "usage_between", lambda before, after, n: {})
    monkeypatch.setattr(harness, "OutputWatch", Watch)
    monkeypatch.setattr(run, "ensure_topics", lambda *args: None)
    monkeypatch.setattr(run, "rss_mb", lambda pid: 0.0)
    monkeypatch.setattr(scaleout, "wait_for_no_backlog", lambda *args: {"found": 0, "left": 0})
    monkeypatch.setattr(scaleout, "split_among", stand_in.split_among)
    return stand_in


def test_a_pipeline_worker_that_died_at_start_stops_the_phase_with_its_exit_and_log(bench: Bench) -> None:
    bench.exits.append(2)  # `vigil worker` on a port another process holds
    with pytest.raises(UserError) as stopped:
        run.measure_pipeline(Settings(), 20, events(20), LOGS)
    log = LOGS / "bench-pipeline.log"
    assert str(stopped.value) == f"a worker of the bench exited with code 2: its log {log} says why"
    assert bench.started[0].stopped


def test_a_baseline_worker_that_died_at_start_stops_the_phase(bench: Bench) -> None:
    bench.exits.append(1)
    with pytest.raises(UserError, match=r"exited with code 1: its log .*bench-baseline\.log says why"):
        run.measure_baseline(Settings(), 20, [(k, v) for _, k, v in events(20)], LOGS)


def test_a_curve_point_with_a_worker_that_died_at_start_stops_with_it(bench: Bench) -> None:
    """The others split the partitions among themselves: the point waited 180 s for a split that
    never came, then measured one worker fewer than it said."""
    bench.exits.extend([None, 2])
    with pytest.raises(UserError, match=r"exited with code 2: its log .*bench-scale-1\.log says why"):
        scaleout.measure_point(Settings(), 2, "pipeline", events(20), LOGS, 12)
    assert len(bench.started) == 2 and all(w.stopped for w in bench.started)


def test_a_stop_while_the_phase_settles_stops_its_worker(bench: Bench, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
        raise KeyboardInterrupt("SIGTERM")  # stop_on_signals'

    monkeypatch.setattr(run, "wait_until", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run.measure_pipeline(Settings(), 20, events(20), LOGS)
    assert len(bench.started) == 1 and bench.started[0].stopped


def test_a_stop_while_a_point_starts_its_workers_stops_those_already_started(
    bench: Bench, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``spawn_worker`` raises a stop that came while it started a worker (after stopping that one):
    the workers of the point started before it had no name a ``finally`` could reach."""
    first = Worker()

    def spawn(settings: Settings, log: Path, *args: Any, **kwargs: Any) -> Worker:
        if bench.started:
            raise KeyboardInterrupt
        bench.started.append(first)
        return first

    monkeypatch.setattr(scaleout, "spawn_pipeline", spawn)
    with pytest.raises(KeyboardInterrupt):
        scaleout.measure_point(Settings(), 2, "pipeline", events(20), LOGS, 12)
    assert first.stopped


def test_a_phase_that_timed_out_divides_the_events_it_accounted_for_by_their_span(bench: Bench) -> None:
    """5,000 of 20,000 scored over 2 s, then nothing: 2,500 events/s, not 10,000."""
    offered = events(20_000)
    Watch.scored = [eid for eid, _, _ in offered[:5_000]]
    result, _ = run.measure_pipeline(Settings(), len(offered), offered, LOGS)
    assert result["complete"] is False and result["unaccounted"] == 15_000
    assert result["events_per_s"] == pytest.approx(2_500.0)
    baseline = run.measure_baseline(Settings(), len(offered), [(k, v) for _, k, v in offered], LOGS)
    assert baseline["complete"] is False and baseline["events_per_s"] == pytest.approx(2_500.0)
    point = scaleout.measure_point(Settings(), 1, "pipeline", offered, LOGS, 12)
    assert point["complete"] is False and point["events_per_s"] == pytest.approx(2_500.0)


def test_a_phase_that_ended_divides_every_event_by_the_span(bench: Bench) -> None:
    offered = events(100)
    Watch.scored = [eid for eid, _, _ in offered]
    result, _ = run.measure_pipeline(Settings(), len(offered), offered, LOGS)
    assert result["complete"] is True and result["events_per_s"] == pytest.approx(50.0)


def test_the_bench_hands_its_workers_none_of_the_parents_ports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIGIL_METRICS_PORT", "19100")
    monkeypatch.setenv("VIGIL_HEALTH_PORT", "19101")
    envs: list[dict[str, str]] = []

    def popen(args: list[str], env: dict[str, str], **kwargs: Any) -> SimpleNamespace:
        envs.append(env)
        return SimpleNamespace(pid=0, poll=lambda: None)

    monkeypatch.setattr(subprocess, "Popen", popen)
    settings = Settings(home=tmp_path)
    harness.spawn_pipeline(settings, tmp_path / "p.log")
    harness.spawn_baseline(settings, tmp_path / "b.log")
    assert len(envs) == 2
    for env in envs:
        assert "VIGIL_METRICS_PORT" not in env and "VIGIL_HEALTH_PORT" not in env
    assert envs[0]["VIGIL_APP_ID"] == harness.BENCH_APP_ID
    # a port the caller gives one worker is its own
    assert harness.bench_worker_env({"VIGIL_METRICS_PORT": "9101"})["VIGIL_METRICS_PORT"] == "9101"


def test_a_stopped_churn_run_stops_every_worker_it_started_none_with_the_parents_ports(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import vigil.infra.connect as connect
    import vigil.infra.readback as readback
    import vigil.infra.settings as settings_module
    import vigil.infra.stack as stack

    monkeypatch.setenv("VIGIL_METRICS_PORT", "19100")
    spawned: list[tuple[Worker, dict[str, str]]] = []
    reader = SimpleNamespace(stopped=False, snapshot=lambda: SimpleNamespace(scored_ids=set()))
    reader.start = lambda: reader

    def stop_reader() -> None:
        reader.stopped = True

    reader.stop = stop_reader

    def spawn(settings: Settings, log: Path, extra_env: Any = None) -> Worker:
        spawned.append((Worker(), workers.worker_env(settings, extra_env)))
        return spawned[-1][0]

    def stop(worker: Worker) -> int | None:
        worker.stopped = True
        return None

    sleeps = [0]

    def sleep(seconds: float) -> None:  # the second wait of the main thread: inside the first cycle
        if threading.current_thread() is threading.main_thread():
            sleeps[0] += 1
            if sleeps[0] == 2:
                raise KeyboardInterrupt("SIGTERM")
        else:
            time.sleep(0.01)

    monkeypatch.setattr(settings_module, "get_settings", lambda: Settings(home=tmp_path))
    monkeypatch.setattr(stack, "stack_up", lambda settings: None)
    monkeypatch.setattr(readback, "TopicReader", lambda settings: reader)
    monkeypatch.setattr(workers, "spawn_worker", spawn)
    monkeypatch.setattr(workers, "stop_worker", stop)
    producer = SimpleNamespace(send=lambda *args, **kwargs: None, flush=lambda: None)
    monkeypatch.setattr(connect, "kafka_producer", lambda *args, **kwargs: producer)
    monkeypatch.setattr(churn, "time", SimpleNamespace(sleep=sleep, monotonic=time.monotonic))
    with pytest.raises(KeyboardInterrupt):
        churn.main(["3", "2"])
    assert len(spawned) == 3  # the worker that stays, and the first cycle's two
    assert all(worker.stopped for worker, _ in spawned)
    assert all("VIGIL_METRICS_PORT" not in env for _, env in spawned)
    assert reader.stopped
