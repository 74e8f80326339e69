"""The bench's load generator: its own garbage collections are frozen out and recorded."""

from __future__ import annotations

import gc

from vigil.bench.harness import quiet_collector


def test_collections_during_the_phase_are_recorded_and_the_freeze_is_undone() -> None:
    held = [{"event": i} for i in range(10_000)]  # an earlier phase's events
    with quiet_collector() as pauses:
        assert gc.get_freeze_count() >= len(held)  # what the process held is out of the collector's walk
        gc.collect()
        gc.collect(0)
    summary = pauses.summary()
    assert summary["collections"] == 2
    assert 0 <= summary["max_ms"] <= summary["total_ms"]
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert pauses.summary() == summary  # no longer listening


def test_no_collection_is_a_zero_summary() -> None:
    with quiet_collector() as pauses:
        pass
    assert pauses.summary() == {"collections": 0, "max_ms": 0.0, "total_ms": 0.0}
