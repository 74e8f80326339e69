"""``vigil_consumer_lag{topic}``: how many messages of this worker's partitions it has not read
yet (the partitions' end offsets minus the consumer's positions), refreshed every few seconds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vigil.agents.app import app
from vigil.infra import metrics
from vigil.infra.logging import get_logger

log = get_logger(__name__)
LAG_INTERVAL_S = 5.0

_reported: set[str] = set()


def lag_by_topic(ends: Mapping[Any, int], positions: Mapping[Any, int | None]) -> dict[str, int]:
    """Sum over each topic's partitions of (end offset - position); a partition without a
    position yet counts from 0 (nothing read)."""
    lag: dict[str, int] = {}
    for tp, end in ends.items():
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, end - (positions.get(tp) or 0))
    return lag


@app.timer(interval=LAG_INTERVAL_S)
async def report_consumer_lag() -> None:
    consumer = app.consumer
    assigned = consumer.assignment()
    try:
        ends = await consumer.highwaters(*assigned) if assigned else {}
        positions = {tp: await consumer.position(tp) for tp in ends}
    except Exception as exc:  # a rebalance or a broker away: the next tick reports again
        log.warning("consumer_lag.unavailable", error=type(exc).__name__)
        return
    lag = lag_by_topic(ends, positions)
    for topic in _reported - set(lag):  # partitions moved to another worker: no lag here
        metrics.CONSUMER_LAG.labels(topic).set(0)
    for topic, value in lag.items():
        metrics.CONSUMER_LAG.labels(topic).set(value)
    _reported.clear()
    _reported.update(lag)
