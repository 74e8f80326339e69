"""No phase of `vigil bench` inherits another's backlog, and a dead-lettered event ends a phase as a
scored one does (bench.harness, bench.scaleout.measure_point, bench.run.measure_pipeline), with
stand-ins for the broker, the workers and the watches: the real measurement runs against a stack.

Runs M1-M6: the MLLP phase left 24,000 events on vigil.events.raw with no worker running, and the
curve's 1-worker point read them inside its span (~1,000 events/s for ~2,400). On the shipped
sample one event of the first 20,000 is dead-lettered (out_of_range), and every throughput phase
waited its full 600 s for its score."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import vigil.bench.harness as harness
import vigil.bench.run as run
import vigil.bench.scaleout as scaleout
from vigil.infra.settings import Settings
from vigil.schemas import topics

REAL_WAIT_UNTIL = harness.wait_until
MLLP_BACKLOG = 24_000  # 2 runs x 2,000 ORU^R01 x 6 OBX


def short_wait(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    """``wait_until`` with its timeout cut to a second: a phase that does not end fails the test
    instead of waiting 600 s."""
    return REAL_WAIT_UNTIL(predicate, min(timeout, 1.0), interval=0.01)


@dataclass
class Group:
    """A consumer group's unread records on its input topic: its running workers read 12,000 of
    them each time the broker is asked."""

    backlog: int
    alive: int = 0
    at_preload: list[int] = field(default_factory=list)

    def group_backlog(self, settings: Settings, group: str, topic: str) -> int:
        if self.alive:
            self.backlog = max(0, self.backlog - 12_000)
        return self.backlog

    def spawn(self, *args: Any, **kwargs: Any) -> SimpleNamespace:
        self.alive += 1
        return SimpleNamespace(pid=0, poll=lambda: None)  # running

    def stop(self, proc: Any) -> None:
        self.alive -= 1


class Watch:
    """``OutputWatch`` without a broker: ``feed`` hands it a record as its consumer would."""

    started: dict[str, Watch] = {}

    def __init__(self, settings: Settings, topic: str, on_record: Any = None) -> None:
        self.topic, self.on_record = topic, on_record
        self.count = 0
        self.first_ts: int | None = None
        self.last_ts: int | None = None

    def start(self) -> Watch:
        Watch.started[self.topic] = self
        return self

    def stop(self) -> None:
        pass

    def feed(self, value: dict[str, Any], timestamp: int) -> None:
        self.count += 1
        self.first_ts = timestamp if self.first_ts is None else min(self.first_ts, timestamp)
        self.last_ts = timestamp if self.last_ts is None else max(self.last_ts, timestamp)
        if self.on_record:
            self.on_record(SimpleNamespace(value=json.dumps(value).encode(), timestamp=timestamp))


def events(n: int) -> list[tuple[str, bytes, bytes]]:
    return [(f"e{i}", f"p{i % 7}".encode(), b"{}") for i in range(n)]


def pipeline_answering(group: Group | None, offered: list[tuple[str, bytes, bytes]]) -> Any:
    """A ``preload`` whose events a worker then handles: every one scored (1 ms apart) but the
    last, which ingest dead-letters as ``out_of_range`` (the shipped sample's FiO2 0.2)."""

    def preload(settings: Settings, topic: str, messages: list[Any], on_ack: Any = None) -> None:
        if group is not None:
            group.at_preload.append(group.backlog)
        for i in range(len(messages)):
            if on_ack:
                on_ack(SimpleNamespace(partition=0, offset=100 + i), index=i)
        for i, (eid, _, _) in enumerate(offered[:-1]):
            Watch.started[topics.SCORES].feed({"event_ids": [eid]}, timestamp=1_000 + i)
        letter = {"source_topic": topics.EVENTS_RAW, "partition": 0, "offset": 100 + len(offered) - 1}
        if topics.DEADLETTER in Watch.started:  # read only by a phase that watches the dead letters
            Watch.started[topics.DEADLETTER].feed({**letter, "reason": "out_of_range"}, timestamp=2_000)

    return preload


@pytest.fixture
def broker(monkeypatch) -> Group:
    group = Group(backlog=MLLP_BACKLOG)
    Watch.started = {}
    monkeypatch.setattr(harness, "group_backlog", group.group_backlog)
    monkeypatch.setattr(harness, "BACKLOG_POLL_S", 0.0)
    monkeypatch.setattr(harness, "stop_worker", group.stop, raising=False)
    monkeypatch.setattr(harness, "wait_until", short_wait)
    monkeypatch.setattr(harness, "OutputWatch", Watch)
    for module in (scaleout, run):
        monkeypatch.setattr(module, "wait_until", short_wait)
        monkeypatch.setattr(module, "OutputWatch", Watch, raising=False)
        monkeypatch.setattr(module, "stop_worker", group.stop)
        monkeypatch.setattr(module, "spawn_pipeline", group.spawn)
        monkeypatch.setattr(module, "sample", lambda settings, pids: None)
        monkeypatch.setattr(module, "usage_between", lambda before, after, n: {})
    monkeypatch.setattr(scaleout, "spawn_baseline", group.spawn)
    monkeypatch.setattr(scaleout, "split_among", lambda *args: True)
    monkeypatch.setattr(run, "rss_mb", lambda pid: 0.0)
    return group


def test_a_curve_point_starts_once_its_group_has_read_the_mllp_backlog(broker: Group, monkeypatch) -> None:
    offered = events(20)
    monkeypatch.setattr(scaleout, "preload", pipeline_answering(broker, offered))
    point = scaleout.measure_point(Settings(), 1, "pipeline", offered, Path("/nonexistent"), 12)
    assert broker.at_preload == [0], "the point's events were produced behind another phase's backlog"
    # the workers read on while asked: the first answer is part of the backlog already
    assert point["backlog_before_load"]["found"] > 0 and point["backlog_before_load"]["left"] == 0
    assert broker.alive == 0


def test_a_dead_lettered_event_ends_a_curve_point(broker: Group, monkeypatch) -> None:
    broker.backlog = 0
    offered = events(20)
    monkeypatch.setattr(scaleout, "preload", pipeline_answering(broker, offered))
    point = scaleout.measure_point(Settings(), 2, "pipeline", offered, Path("/nonexistent"), 12)
    assert point["complete"] is True
    assert point["dead_lettered"] == {"out_of_range": 1} and point["unaccounted"] == 0
    assert point["seconds"] == pytest.approx(0.018)  # its span: the scores' timestamps only


def test_a_dead_lettered_event_ends_the_preloaded_pipeline_phase(broker: Group, monkeypatch) -> None:
    offered = events(50)
    monkeypatch.setattr(run, "preload", pipeline_answering(None, offered))
    result, _ = run.measure_pipeline(Settings(), len(offered), offered, Path("/nonexistent"))
    assert result["complete"] is True
    assert result["events"] == 49 and result["dead_lettered"] == {"out_of_range": 1}
    assert result["unaccounted"] == 0


def test_an_event_neither_scored_nor_dead_lettered_keeps_the_phase_open(broker: Group, monkeypatch) -> None:
    offered = events(10)
    answered = pipeline_answering(None, offered)

    def no_letter(settings: Settings, topic: str, messages: list[Any], on_ack: Any = None) -> None:
        answered(settings, topic, messages)  # no acknowledgement: the letter names no known event

    monkeypatch.setattr(run, "preload", no_letter)
    result, _ = run.measure_pipeline(Settings(), len(offered), offered, Path("/nonexistent"))
    assert result["complete"] is False and result["unaccounted"] == 1


def test_the_run_reads_an_earlier_runs_backlog_with_one_worker_then_stops_it(broker: Group) -> None:
    assert harness.drain_backlog(Settings(), "vigil-bench", topics.EVENTS_RAW, broker.spawn) == {
        "found": MLLP_BACKLOG,
        "left": 0,
    }
    assert broker.alive == 0 and broker.backlog == 0
    spawned = []
    assert harness.drain_backlog(Settings(), "vigil-bench", topics.EVENTS_RAW, lambda: spawned.append(1)) == {
        "found": 0,
        "left": 0,
    }
    assert spawned == []  # nothing to read: no worker started


def test_a_backlog_that_is_not_read_in_time_is_reported(broker: Group, monkeypatch) -> None:
    monkeypatch.setattr(harness, "BACKLOG_TIMEOUT_S", 0.0)
    assert harness.wait_for_no_backlog(Settings(), "vigil-bench", topics.EVENTS_RAW) == {
        "found": MLLP_BACKLOG,
        "left": MLLP_BACKLOG,
    }
