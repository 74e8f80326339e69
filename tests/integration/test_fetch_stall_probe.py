"""The fetch-stall probe (bench/fetch_stall.py) runs against the real broker: the record it times
is produced, fetched and found. How long it waited is a measurement for docs/performance.md, not
asserted here."""

from __future__ import annotations

from vigil.bench.fetch_stall import new_record_delay


def test_the_probe_measures_a_delay_on_the_real_broker(stack, stack_settings) -> None:
    delay = new_record_delay(stack_settings, 100)
    assert 0 < delay < 30
