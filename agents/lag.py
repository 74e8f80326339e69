"""``vigil_consumer_lag{topic}``: how many messages of this worker's partitions it has not read
yet (the partitions' end offsets minus the consumer's positions), refreshed every few seconds; and
the same look feeds the watchdog of partitions held but no longer read (``agents.progress``):
``vigil_consumer_stalled_partitions{topic}``, ``consumer.stalled``, and the worker leaving.
``vigil_broker_look_age_seconds`` (read on each scrape): since the last look the broker answered;
it grows while the broker is away or does not answer, with or without events flowing. A worker that
holds no partition (more workers than partitions, a rebalance) asks for the end offset of the scoring
input's first partition instead, so it sees an outage too."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from faust.types import TP

from vigil.agents.app import app
from vigil.agents.health import AGENTS
from vigil.agents.progress import OBSERVE_EVERY_S, PROGRESS, Stall
from vigil.agents.runtime import store_healthy
from vigil.infra import metrics
from vigil.infra.logging import get_logger
from vigil.infra.workers import EXIT_LEFT_GROUP
from vigil.schemas import topics

log = get_logger(__name__)
# a worker that leaves stops as on SIGTERM (batch in hand finished, offsets committed, group left);
# if that has not ended the process after this long, it ends without
LEAVE_DEADLINE_S = 60.0

_reported: set[str] = set()
_stalled: set[tuple[str, int]] = set()
_answered = [time.monotonic()]  # when the broker last answered a look (the worker's start before the first)
metrics.BROKER_LOOK_AGE.set_function(lambda: time.monotonic() - _answered[0])


def lag_by_topic(ends: Mapping[Any, int], positions: Mapping[Any, int | None]) -> dict[str, int]:
    """Sum over each topic's partitions of (end offset - position); a partition without a
    position yet counts from 0 (nothing read)."""
    lag: dict[str, int] = {}
    for tp, end in ends.items():
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, end - (positions.get(tp) or 0))
    return lag


@app.timer(interval=OBSERVE_EVERY_S, name="consumer.lag")
async def report_consumer_lag() -> None:
    await look(app.consumer)


async def look(consumer: Any) -> None:
    """One look at the partitions ``consumer`` holds: their lag, the watchdog's progress, the time
    the broker answered."""
    assigned = consumer.assignment()
    try:
        if assigned:
            ends = await consumer.highwaters(*assigned)
            positions = {tp: await consumer.position(tp) for tp in ends}
        else:  # nothing to measure; the broker is asked all the same
            await consumer.highwaters(TP(topics.EVENTS_RAW, 0))
            ends, positions = {}, {}
    except Exception as exc:  # a rebalance or a broker away: the next tick reports again
        log.warning("consumer_lag.unavailable", error=type(exc).__name__)
        PROGRESS.forget()
        return
    _answered[0] = time.monotonic()
    lag = lag_by_topic(ends, positions)
    for topic in _reported - set(lag):  # partitions moved to another worker: no lag here
        metrics.CONSUMER_LAG.labels(topic).set(0)
    for topic, value in lag.items():
        metrics.CONSUMER_LAG.labels(topic).set(value)
    _reported.clear()
    _reported.update(lag)
    watched = agent_topics()
    report_stalls(PROGRESS.observe({tp: end for tp, end in ends.items() if tp.topic in watched}, positions), watched)


def agent_topics() -> frozenset[str]:
    """The topics this worker's agents read (not Faust's own, such as its leader topic)."""
    return frozenset(topic for agent in app.agents.values() for topic in getattr(agent.channel, "topics", ()))


def report_stalls(stalls: Sequence[Stall], topics: frozenset[str]) -> None:
    per_topic = dict.fromkeys(topics, 0)
    for stall in stalls:
        per_topic[stall.topic] = per_topic.get(stall.topic, 0) + 1
    for topic, count in per_topic.items():
        metrics.CONSUMER_STALLED.labels(topic).set(count)
    now = {(s.topic, s.partition) for s in stalls}
    holding, redis_ok = (AGENTS.holding(), store_healthy()) if stalls else (False, True)
    for stall in stalls:
        if (stall.topic, stall.partition) not in _stalled:
            log.error(
                "consumer.stalled",
                topic=stall.topic,
                partition=stall.partition,
                waiting=stall.waiting,
                position=stall.position,
                stalled_s=round(stall.stalled_s),
                agents_holding=holding,
                redis_ok=redis_ok,
            )
    for topic, partition in sorted(_stalled - now):
        log.warning("consumer.progressing", topic=topic, partition=partition)
    _stalled.clear()
    _stalled.update(now)
    if PROGRESS.should_exit(stalls, holding or not redis_ok) and not PROGRESS.exit_requested:
        leave(stalls)


def leave(stalls: Sequence[Stall]) -> None:
    """Stop the worker as SIGTERM would; ``vigil worker`` then exits ``EXIT_LEFT_GROUP``."""
    PROGRESS.exit_requested = True
    log.error(
        "worker.leaving",
        reason="partitions stalled with nothing to explain it: their records go to the other workers",
        partitions=[f"{s.topic}[{s.partition}]" for s in stalls],
        exit_code=EXIT_LEFT_GROUP,
    )
    deadline = threading.Timer(LEAVE_DEADLINE_S, os._exit, args=(EXIT_LEFT_GROUP,))
    deadline.daemon = True
    deadline.start()
    os.kill(os.getpid(), signal.SIGTERM)
