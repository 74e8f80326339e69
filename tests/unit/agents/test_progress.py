"""The watchdog of partitions a worker holds but no longer reads (agents/progress.py)."""

from __future__ import annotations

import pytest
from faust.types import TP
from pydantic import ValidationError

from tests.conftest import FakeClock as Clock
from vigil.agents import lag
from vigil.agents.progress import PartitionProgress, Stall
from vigil.infra import metrics
from vigil.infra.settings import WatchdogSettings

RAW0, RAW1 = TP("vigil.events.raw", 0), TP("vigil.events.raw", 1)


def watch(clock: Clock, stall_after_s: float = 60.0, exit_after_s: float = 180.0) -> PartitionProgress:
    return PartitionProgress(stall_after_s, exit_after_s, max_gap_s=15.0, clock=clock)


def looks(progress: PartitionProgress, clock: Clock, seconds: float, ends: dict, positions: dict) -> list[Stall]:
    """Looks every 5 s for ``seconds``; the stalls of the last one."""
    stalls = progress.observe(ends, positions)
    for _ in range(int(seconds // 5)):
        clock.now += 5
        stalls = progress.observe(ends, positions)
    return stalls


def test_records_waiting_and_nothing_moving_is_a_stall_then_a_reason_to_leave() -> None:
    clock = Clock()
    progress = watch(clock)
    ends, positions = {RAW0: 500, RAW1: 80}, {RAW0: 420, RAW1: 80}
    assert looks(progress, clock, 55, ends, positions) == []
    assert progress.ok()
    stalls = looks(progress, clock, 5, ends, positions)
    assert stalls == [Stall("vigil.events.raw", 0, waiting=80, position=420, stalled_s=60.0)]  # RAW1 is caught up
    assert not progress.ok() and progress.stalled_partitions == 1  # readiness, the worker's fleet card
    assert not progress.should_exit(stalls, explained=False)  # not yet
    stalls = looks(progress, clock, 120, ends, positions)
    assert progress.should_exit(stalls, explained=False)
    # an agent retrying its batch (Redis or the broker away) holds every partition: another worker
    # would do no better, so the worker waits, not ready
    assert not progress.should_exit(stalls, explained=True)
    assert not watch(clock, exit_after_s=0).should_exit(stalls, explained=False)  # 0: never leave


def test_a_moving_position_or_handled_events_are_progress() -> None:
    clock = Clock()
    progress = watch(clock)
    ends = {RAW0: 10_000}
    position = 0
    progress.observe(ends, {RAW0: position})
    for _ in range(60):  # fetching: the position moves every look
        clock.now += 5
        position += 50
        assert progress.observe(ends, {RAW0: position}) == []
    for _ in range(60):  # the stream's buffer full, the agent working it down: the position waits
        clock.now += 5
        progress.handled([("vigil.events.raw", 0)] * 10)  # as run_batch counts them: equal to Faust's TP
        assert progress.observe(ends, {RAW0: position}) == []
    assert progress.ok()


def test_an_idle_partition_is_never_stalled() -> None:
    clock = Clock()
    progress = watch(clock)
    assert looks(progress, clock, 3600, {RAW0: 700, RAW1: 0}, {RAW0: 700, RAW1: None}) == []
    assert progress.ok()


def test_the_count_starts_again_when_records_arrive_on_an_idle_partition() -> None:
    clock = Clock()
    progress = watch(clock)
    looks(progress, clock, 600, {RAW0: 700}, {RAW0: 700})
    assert looks(progress, clock, 55, {RAW0: 710}, {RAW0: 700}) == []  # waiting for 55 s only
    assert len(looks(progress, clock, 5, {RAW0: 710}, {RAW0: 700})) == 1


def test_no_judgement_without_continuous_sight() -> None:
    clock = Clock()
    progress = watch(clock)
    ends, positions = {RAW0: 500}, {RAW0: 420}
    looks(progress, clock, 55, ends, positions)
    clock.now += 20  # looks missed (the broker away): the count starts again
    assert looks(progress, clock, 55, ends, positions) == []
    progress.forget()  # the consumer could not be read, or the partitions were revoked
    assert looks(progress, clock, 55, ends, positions) == []
    assert len(looks(progress, clock, 5, ends, positions)) == 1


def test_a_partition_given_back_is_counted_afresh() -> None:
    clock = Clock()
    progress = watch(clock)
    looks(progress, clock, 55, {RAW0: 500}, {RAW0: 420})
    looks(progress, clock, 5, {RAW1: 9}, {RAW1: 9})  # RAW0 went to another worker
    assert looks(progress, clock, 55, {RAW0: 500}, {RAW0: 420}) == []


def test_exit_after_must_leave_time_to_be_stalled() -> None:
    with pytest.raises(ValidationError, match="exit_after_s"):
        WatchdogSettings(stall_after_s=60, exit_after_s=30)
    assert WatchdogSettings(stall_after_s=60, exit_after_s=0).exit_after_s == 0


def test_report_stalls_sets_the_gauge_logs_each_stall_once_and_leaves_when_unexplained(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    left: list[list[Stall]] = []
    monkeypatch.setattr(lag, "leave", lambda stalls: left.append(list(stalls)))
    monkeypatch.setattr(lag, "store_healthy", lambda: True)
    monkeypatch.setattr(lag.PROGRESS, "exit_after_s", 180.0)
    monkeypatch.setattr(lag.PROGRESS, "exit_requested", False)
    logged: list[tuple[str, dict]] = []
    monkeypatch.setattr(lag.log, "error", lambda event, **kw: logged.append((event, kw)))
    monkeypatch.setattr(lag.log, "warning", lambda event, **kw: logged.append((event, kw)))
    topics = frozenset({"vigil.events.raw", "vigil.alerts.acks"})
    early = Stall("vigil.events.raw", 2, waiting=30, position=7, stalled_s=60.0)
    lag.report_stalls([early], topics)
    lag.report_stalls([early], topics)
    assert [event for event, _ in logged] == ["consumer.stalled"]  # once per stall
    assert logged[0][1]["partition"] == 2
    assert metrics.CONSUMER_STALLED.labels("vigil.events.raw")._value.get() == 1
    assert metrics.CONSUMER_STALLED.labels("vigil.alerts.acks")._value.get() == 0
    assert left == []
    late = Stall("vigil.events.raw", 2, waiting=30, position=7, stalled_s=180.0)
    monkeypatch.setattr(lag, "store_healthy", lambda: False)  # Redis away explains it
    lag.report_stalls([late], topics)
    assert left == []
    monkeypatch.setattr(lag, "store_healthy", lambda: True)
    lag.report_stalls([late], topics)
    assert left == [[late]]
    lag.report_stalls([], topics)
    assert logged[-1] == ("consumer.progressing", {"topic": "vigil.events.raw", "partition": 2})
    assert metrics.CONSUMER_STALLED.labels("vigil.events.raw")._value.get() == 0
