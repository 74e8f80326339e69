"""`vigil bench --workers`: which worker counts it runs, the partitions it asks for, and the usage
figures it derives (the measurement itself runs against a real stack: tests/integration)."""

from __future__ import annotations

import pytest

from vigil.bench.scaleout import BENCH_PARTITIONS, parse_counts, with_partitions
from vigil.bench.usage import Usage, usage_between
from vigil.infra.settings import Settings


def test_worker_counts() -> None:
    assert parse_counts("3") == [1, 2, 3]
    assert parse_counts("4,1,2,2") == [1, 2, 4]
    assert parse_counts("2,") == [2]
    for bad in ("", "0", "two", "1,-2", "1.5"):
        with pytest.raises(ValueError, match="--workers takes a count or a list"):
            parse_counts(bad)


def test_partitions_only_grow() -> None:
    settings = Settings()
    assert with_partitions(settings, BENCH_PARTITIONS).kafka.partitions == max(
        BENCH_PARTITIONS, settings.kafka.partitions
    )
    many = with_partitions(settings, 48)
    assert with_partitions(many, 12).kafka.partitions == 48
    assert many.kafka.bootstrap == settings.kafka.bootstrap and many.redis == settings.redis


def test_usage_per_thousand_events_and_unmeasured_parts() -> None:
    before = Usage(10.0, 100.0, 5.0, 1_000, 10_000, 50.0, 100.0, 2.0)
    after = Usage(12.0, 101.0, 5.2, 3_000, 1_010_000, 53.0, 104.0, 3.5)
    got = usage_between(before, after, events=2_000)
    assert got["broker_cores"] == 0.5 and got["broker_cpu_s_per_1000_events"] == 0.5
    assert got["redis_ops_per_s"] == 1000.0 and got["redis_commands_per_event"] == 1.0
    assert got["broker_log_bytes_per_event"] == 500.0 and got["machine_busy_share"] == 0.75
    assert got["workers_cores"] == 0.75
    external = Usage(10.0, None, None, None, None, 50.0, 100.0, None)  # a cluster Vigil did not start
    got = usage_between(external, Usage(12.0, None, None, None, None, 51.0, 102.0, None), events=100)
    assert got["broker_cores"] is None and got["redis_ops_per_s"] is None and got["machine_busy_share"] == 0.5
