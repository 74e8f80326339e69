"""The fetch stall (bench/fetch_stall.py) against the real broker: the probe finds its record, and
the workers' fetcher (agents/transport.py) removes the stall. Faust's 1,500 ms wait holds the new
record ~1.3 s behind a fetch for the quiet partition alone (docs/performance.md); with the
prefetch wait bounded at 50 ms it arrives within the next fetch."""

from __future__ import annotations

from vigil.bench.fetch_stall import new_record_delay


def test_the_probe_measures_a_delay_on_the_real_broker(stack, stack_settings) -> None:
    delay = new_record_delay(stack_settings, 100)
    assert 0 < delay < 30


def test_the_workers_fetcher_does_not_hold_a_busy_partition_behind_a_quiet_one(stack, stack_settings) -> None:
    stalled = new_record_delay(stack_settings, 1500)
    bounded = new_record_delay(stack_settings, 1500, prefetch_wait_ms=50)
    assert stalled > 1.0, f"the stall did not reproduce ({stalled:.3f} s): the probe no longer tests the fix"
    assert bounded < 0.5, f"the new record waited {bounded:.3f} s behind a quiet partition's fetch"
