"""Faust's Kafka transport with one change to the worker consumer's fetcher: a fetch sent while
other partitions' records are still buffered (a *prefetch*) waits at most ``kafka.prefetch_wait_ms``
at the broker; every other fetch keeps Faust's wait (1,500 ms). For every Vigil worker and the
bench's bare-Faust baseline.

Why: aiokafka keeps one fetch in flight per broker and leaves out of it the partitions whose
records are still buffered. A worker behind on its events holds records of every busy partition,
so once they have sat 100 ms its next fetch asks only for the quiet ones (acknowledgements) — and
the broker held that request the full 1.5 s while new events waited behind it: the 1.1–1.6 s
whole-worker pauses of docs/performance.md (``python -m vigil.bench.fetch_stall``). Bounding every
fetch (tried, reverted) also shortened the fetches that find the worker drained, which looked like
a throughput cost; bounding only the prefetches leaves those as Faust has them.
"""

from __future__ import annotations

from typing import Any

import faust
from aiokafka.consumer.fetcher import Fetcher
from faust.transport.drivers import aiokafka as faust_aiokafka

from vigil.infra.settings import get_settings


class PrefetchWaitFetcher(Fetcher):  # type: ignore[misc]
    """aiokafka's fetcher, its wait chosen per fetch: short while records are still buffered."""

    _vigil_full_wait_ms: int
    _vigil_prefetch_wait_ms: int

    def _get_actions_per_node(self, assignment: Any) -> Any:
        buffered = any(tp in self._records for tp in assignment.tps)
        full = self._vigil_full_wait_ms
        self._fetch_max_wait_ms = min(full, self._vigil_prefetch_wait_ms) if buffered else full
        return super()._get_actions_per_node(assignment)


def bound_prefetch_wait(fetcher: Any, prefetch_wait_ms: int) -> Any:
    """Make a started consumer's fetcher a ``PrefetchWaitFetcher``; it takes effect from its next
    fetch. Fails loudly if aiokafka changes the internals this relies on, rather than silently
    keeping the stall."""
    needed = ("_records", "_fetch_max_wait_ms", "_get_actions_per_node")
    if not isinstance(fetcher, Fetcher) or not all(hasattr(fetcher, name) for name in needed):
        raise RuntimeError("aiokafka's fetcher changed: kafka.prefetch_wait_ms cannot be applied")
    fetcher._vigil_full_wait_ms = fetcher._fetch_max_wait_ms
    fetcher._vigil_prefetch_wait_ms = prefetch_wait_ms
    fetcher.__class__ = PrefetchWaitFetcher
    return fetcher


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def on_start(self) -> None:
        await super().on_start()  # builds and starts the aiokafka consumer (and its fetcher)
        assert self._consumer is not None
        bound_prefetch_wait(self._consumer._fetcher, get_settings().kafka.prefetch_wait_ms)


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class PrefetchWaitTransport(faust_aiokafka.Transport):
    Consumer = _Consumer


class PrefetchWaitApp(faust.App):
    """A Faust app whose worker consumer bounds the wait of its prefetches (module docstring)."""

    def _new_transport(self) -> Any:
        return PrefetchWaitTransport(self.conf.broker_consumer, self)
