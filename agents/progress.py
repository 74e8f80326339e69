"""The partitions a worker holds but no longer reads: records wait on one of its partitions and
neither its consumer's position nor its agent's handled events move.

Kafka gives the partition to no one else while this worker keeps its place in the group, so its
patients would go unscored for as long as the process lives. aiokafka under Faust can stop sending
fetches for a partition after a rebalance (faust-streaming/faust#629, open), and Faust only logs
that. Here such a partition first makes the worker not ready (``vigil_consumer_stalled_partitions``,
the log line ``consumer.stalled``), then, if nothing else explains it (no agent retrying or blocked on
a batch, Redis answering), the worker leaves: it stops as on SIGTERM, its partitions go to the other
workers of the group and its supervisor starts it again (exit status 75,
``infra.workers.EXIT_LEFT_GROUP``). Nothing is lost: offsets cover handled batches only, so the
events behind the stall are read from where the group left them.

Pure bookkeeping on a clock, fed by the consumer-lag timer (``agents.lag``) and ``run_batch``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar


class TopicPartition(Protocol):
    """Faust's ``TP`` and aiokafka's ``TopicPartition`` alike."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    def __hash__(self) -> int: ...


TP = TypeVar("TP", bound=TopicPartition)


@dataclass(frozen=True)
class Stall:
    topic: str
    partition: int
    waiting: int  # records on the partition beyond the consumer's position
    position: int | None
    stalled_s: float  # how long neither the position nor the handled events moved


@dataclass
class _Watch:
    mark: tuple[int | None, int]  # (consumer position, events handled on the partition)
    since: float  # when the mark last moved, or the partition was (re)assigned
    waiting: int = 0


class PartitionProgress:
    """Whether each partition of this worker makes progress. ``stall_after_s``: records waiting and
    nothing moved this long is a stall; ``exit_after_s``: this long, and unexplained, the worker
    leaves (0: never). A gap between observations of more than ``max_gap_s`` (a broker away, a
    rebalance) starts every partition's count again: no judgement without continuous sight."""

    def __init__(
        self,
        stall_after_s: float,
        exit_after_s: float,
        max_gap_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stall_after_s = stall_after_s
        self.exit_after_s = exit_after_s
        self.max_gap_s = max_gap_s
        self._clock = clock
        self._handled: Counter[Hashable] = Counter()
        self._watch: dict[Hashable, _Watch] = {}
        self._last_seen: float | None = None
        self.stalled_partitions = 0  # at the last look (read by readiness and the fleet card)
        self.exit_requested = False

    def handled(self, tps: Iterable[Hashable]) -> None:
        """Events of these partitions were handled (``run_batch``, after the batch is done)."""
        self._handled.update(tps)

    def forget(self) -> None:
        """The consumer could not be read (a rebalance, a broker away): count again from the next look."""
        self._watch.clear()
        self._last_seen = None
        self.stalled_partitions = 0

    def observe(self, ends: Mapping[TP, int], positions: Mapping[TP, int | None]) -> list[Stall]:
        """One look at the partitions held (their end offsets and the consumer's positions):
        returns the stalled ones."""
        now = self._clock()
        if self._last_seen is not None and now - self._last_seen > self.max_gap_s:
            self._watch.clear()
        self._last_seen = now
        for gone in set(self._watch) - set(ends):  # moved to another worker
            del self._watch[gone]
        for gone in set(self._handled) - set(ends):
            del self._handled[gone]
        stalls: list[Stall] = []
        for tp, end in ends.items():
            position = positions.get(tp)
            mark = (position, self._handled[tp])
            waiting = max(0, end - (position or 0))
            watch = self._watch.get(tp)
            if watch is None or watch.mark != mark or waiting == 0:
                self._watch[tp] = watch = _Watch(mark=mark, since=now)
            watch.waiting = waiting
            stalled_s = now - watch.since
            if waiting and stalled_s >= self.stall_after_s:
                stalls.append(Stall(tp.topic, tp.partition, waiting, position, stalled_s))
        self.stalled_partitions = len(stalls)
        return stalls

    def ok(self) -> bool:
        """For readiness: no partition stalled at the last look."""
        return not self.stalled_partitions

    def should_exit(self, stalls: Iterable[Stall], explained: bool) -> bool:
        """Leave the group when a stall lasted ``exit_after_s`` and nothing explains it: an agent
        retrying or blocked on a batch, or Redis away, stalls every partition, and another worker
        would do no better (the worker waits as not ready instead)."""
        if self.exit_after_s <= 0 or explained:
            return False
        return any(s.stalled_s >= self.exit_after_s for s in stalls)


# the consumer-lag timer's period: each of its looks feeds ``PROGRESS``
OBSERVE_EVERY_S = 5.0


def _from_settings() -> PartitionProgress:
    from vigil.infra.settings import get_settings

    watchdog = get_settings().watchdog
    return PartitionProgress(watchdog.stall_after_s, watchdog.exit_after_s, max_gap_s=3 * OBSERVE_EVERY_S)


PROGRESS = _from_settings()
