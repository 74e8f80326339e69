"""Faust's Kafka transport, with the workers' consumer fetch wait bounded by
``kafka.fetch_max_wait_ms`` — for every Vigil worker and the bench's bare-Faust baseline.

Faust builds its aiokafka consumer with ``fetch_max_wait_ms=1500``. aiokafka keeps one fetch in
flight per broker and, once a partition's records have sat 100 ms unconsumed in its buffer (the
worker busy with a batch), sends a fetch for the other partitions alone. A worker that also reads
quiet topics (the scoring pipeline's scores and alert acknowledgements) then has a fetch the broker
holds for the full wait, and its busy event partitions wait behind it: behind on a busy ward, a
worker paused ~1.3–1.6 s (tests/integration/test_fetch_wait.py reproduces it). With the wait
bounded, that fetch returns within ``fetch_max_wait_ms``; with data present nothing changes
(``fetch_min_bytes`` stays 1: the broker answers at once), and an idle worker polls a little more
often (docs/performance.md)."""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from vigil.infra.settings import get_settings


def bound_fetch_wait(consumer: Any, max_wait_ms: int) -> Any:
    """Set the fetch wait on an aiokafka consumer that is built but not started (its fetcher reads
    it at start). Fails loudly if aiokafka renames it, rather than silently keeping Faust's 1.5 s."""
    if not hasattr(consumer, "_fetch_max_wait_ms"):
        raise RuntimeError("aiokafka's consumer has no _fetch_max_wait_ms: kafka.fetch_max_wait_ms cannot be applied")
    consumer._fetch_max_wait_ms = max_wait_ms
    return consumer


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        return bound_fetch_wait(super()._create_worker_consumer(transport), get_settings().kafka.fetch_max_wait_ms)


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class BoundedWaitTransport(faust_aiokafka.Transport):
    Consumer = _Consumer


class BoundedWaitApp(faust.App):
    """A Faust app whose worker consumer waits at most ``kafka.fetch_max_wait_ms`` per fetch."""

    def _new_transport(self) -> Any:
        return BoundedWaitTransport(self.conf.broker_consumer, self)
