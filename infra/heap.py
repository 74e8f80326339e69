"""The worker's start-up heap, frozen out of Python's cyclic garbage collector.

A worker holds ~100-140 k long-lived container objects after start-up (Faust, aiokafka, pydantic
schemas, the bundle). Every full (generation 2) collection walks all of them: 70-130 ms on this
project's 2-core VM, every 1-4 s under load, with the event loop and the inference thread stopped
(the GIL is held throughout). That pause was the largest single cause of the p99 scoring latency
(docs/performance.md, "Tail latency"). ``gc.freeze()`` moves everything alive at that moment to a
permanent generation the collector skips: later full collections walk only what was allocated
since (6-28 ms measured). Frozen objects are still freed by reference counting; only reference
cycles among them are never collected, and start-up objects are not garbage.
"""

from __future__ import annotations

import gc

from vigil.infra.logging import get_logger

log = get_logger(__name__)

_frozen = False


def freeze_startup_heap() -> int:
    """Collect once, then freeze every live object (once per process; later calls do nothing).
    Returns how many objects the collector no longer walks."""
    global _frozen
    if _frozen:
        return gc.get_freeze_count()
    gc.collect()
    gc.freeze()
    _frozen = True
    count = gc.get_freeze_count()
    log.info("heap.frozen", objects=count)
    return count
