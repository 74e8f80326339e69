"""vigil_consumer_lag: end offsets minus positions, per topic."""

from __future__ import annotations

from faust.types import TP

from vigil.agents.lag import lag_by_topic


def test_lag_sums_partitions_per_topic_and_counts_unread_partitions_from_zero() -> None:
    raw0, raw1, acks0 = TP("vigil.events.raw", 0), TP("vigil.events.raw", 1), TP("vigil.alerts.acks", 0)
    ends = {raw0: 120, raw1: 40, acks0: 7}
    positions = {raw0: 100, raw1: 45, acks0: None}  # raw1 read past a stale end offset: no negative lag
    assert lag_by_topic(ends, positions) == {"vigil.events.raw": 20, "vigil.alerts.acks": 7}
