"""vigil_consumer_lag: end offsets minus positions, per topic; vigil_broker_look_age_seconds."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaTimeoutError
from faust.types import TP
from prometheus_client import REGISTRY

from vigil.agents import lag
from vigil.agents.lag import lag_by_topic


def test_lag_sums_partitions_per_topic_and_counts_unread_partitions_from_zero() -> None:
    raw0, raw1, acks0 = TP("vigil.events.raw", 0), TP("vigil.events.raw", 1), TP("vigil.alerts.acks", 0)
    ends = {raw0: 120, raw1: 40, acks0: 7}
    positions = {raw0: 100, raw1: 45, acks0: None}  # raw1 read past a stale end offset: no negative lag
    assert lag_by_topic(ends, positions) == {"vigil.events.raw": 20, "vigil.alerts.acks": 7}


class Consumer:
    """What a look asks of Faust's consumer; ``away``: the broker does not answer."""

    def __init__(self, holds: bool = True) -> None:
        self.away = False
        self.tp = TP("vigil.events.raw", 0)
        self.holds = holds
        self.asked: list[tuple[TP, ...]] = []

    def assignment(self) -> set[TP]:
        return {self.tp} if self.holds else set()

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        self.asked.append(tps)
        if self.away:
            raise KafkaTimeoutError()
        return dict.fromkeys(tps, 10)

    async def position(self, tp: TP) -> int:
        return 4


def look_age() -> float:
    value = REGISTRY.get_sample_value("vigil_broker_look_age_seconds")
    assert value is not None
    return value


def test_the_look_age_grows_while_the_broker_does_not_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """vigil_broker_look_age_seconds: from the last look the broker answered, whether or not events flow."""
    clock = [1000.0]
    monkeypatch.setattr(lag.time, "monotonic", lambda: clock[0])
    consumer = Consumer()
    asyncio.run(lag.look(consumer))
    assert look_age() == 0.0
    assert REGISTRY.get_sample_value("vigil_consumer_lag", {"topic": "vigil.events.raw"}) == 6.0
    consumer.away = True
    clock[0] += 30
    asyncio.run(lag.look(consumer))  # logged, not raised: the next tick looks again
    assert look_age() == 30.0
    consumer.away = False
    clock[0] += 5
    asyncio.run(lag.look(consumer))
    assert look_age() == 0.0


def test_a_worker_holding_no_partition_still_asks_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """More workers than partitions: the idle one sees a broker outage too (it asks for one end offset)."""
    clock = [2000.0]
    monkeypatch.setattr(lag.time, "monotonic", lambda: clock[0])
    consumer = Consumer(holds=False)
    asyncio.run(lag.look(consumer))
    assert look_age() == 0.0 and consumer.asked == [(TP("vigil.events.raw", 0),)]
    consumer.away = True
    clock[0] += 40
    asyncio.run(lag.look(consumer))
    assert look_age() == 40.0
