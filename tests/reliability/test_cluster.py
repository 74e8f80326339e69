"""A three-broker KRaft cluster (``vigil stack up --brokers 3``): Vigil's topics are replicated 3
times with ``min.insync.replicas=2``; one broker gets SIGKILL while a worker scores a steady stream,
stays down, and is restarted. Every accepted event is scored, nothing is lost, and the times to
recover are measured (docs/reliability.md)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port_block, link_cached_kafka_jars, wait_for
from tests.reliability.helpers import PacedProducer, event_payloads, gateway_producer, kill_broker, report, ward_stream
from vigil.schemas import topics

pytestmark = pytest.mark.reliability

DOWN_S = 15.0  # how long the killed broker stays away (a host reboot would take longer)


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    from vigil.infra.settings import KafkaSettings, RedisSettings, Settings
    from vigil.infra.stack import stack_down, stack_up

    with tempfile.TemporaryDirectory(prefix="vigil-cluster-") as tmp:
        home = Path(tmp)
        link_cached_kafka_jars(home)
        base = free_port_block(7)  # 3 x (broker, controller) + Redis
        settings = Settings(
            home=home,
            kafka=KafkaSettings(embedded_port=base, embedded_controller_port=base + 1, brokers=3),
            redis=RedisSettings(embedded_port=base + 6),
        )
        stack_up(settings)
        try:
            yield settings
        finally:
            stack_down(settings)


def _leader_of(settings, topic: str, partition: int = 0) -> int:
    """The node index (0-based) leading ``topic``'s partition."""
    from vigil.infra.connect import kafka_admin

    admin = kafka_admin(settings)
    try:
        (described,) = admin.describe_topics([topic])
        leader = next(p["leader_id"] for p in described["partitions"] if p["partition_index"] == partition)
    finally:
        admin.close()
    return int(leader) - 1  # node.id = index + 1


def test_broker_killed_mid_stream_loses_nothing(cluster, tmp_path, results_dir) -> None:
    from vigil.infra.readback import TopicReader
    from vigil.infra.stack.kafka import start_kafka
    from vigil.infra.stack.topics import describe_replication
    from vigil.infra.workers import spawn_worker, stop_worker
    from vigil.schemas.topics import ALL_TOPICS

    settings = cluster
    before = describe_replication(settings, ALL_TOPICS)
    assert all(t["min_replicas"] == 3 and t["min_isr"] == 3 for t in before.values()), before
    assert all(t["min_insync_replicas"] == 2 for t in before.values()), before

    reader = TopicReader(settings).start()
    log = tmp_path / "cluster-worker.log"
    worker = spawn_worker(settings, log)
    events = ward_stream("cluster", patients=50, hours=12)  # 3,000 events at 150/s: ~20 s
    ids = {e.event_id for e in events}
    producer = gateway_producer(settings)
    try:
        stream = PacedProducer(producer, event_payloads(events), rate_per_s=150).start()
        assert wait_for(lambda: len(ids & reader.snapshot().scored_ids) >= 600, timeout=120), log.read_text()[-3000:]
        victim = _leader_of(settings, topics.EVENTS_RAW)
        scored_at_kill = len(ids & reader.snapshot().scored_ids)
        killed_at = time.monotonic()
        kill_broker(settings, victim)
        # scoring goes on with two brokers: leaders move, acks=all needs min.insync.replicas=2
        assert wait_for(lambda: len(ids & reader.snapshot().scored_ids) >= scored_at_kill + 300, timeout=120), (
            log.read_text()[-3000:]
        )
        resumed_s = time.monotonic() - killed_at
        degraded = describe_replication(settings, (topics.EVENTS_RAW, topics.SCORES))
        time.sleep(max(0.0, DOWN_S - (time.monotonic() - killed_at)))
        restarted_at = time.monotonic()
        start_kafka(settings, only=victim)  # same ports, same log dirs; returns once it is registered
        rejoined_s = time.monotonic() - restarted_at
        assert wait_for(
            lambda: all(t["min_isr"] == 3 for t in describe_replication(settings, ALL_TOPICS).values()), timeout=180
        ), "the restarted broker must catch up and rejoin every ISR"
        isr_restored_s = time.monotonic() - restarted_at
        all_scored = wait_for(lambda: ids <= reader.snapshot().scored_ids, timeout=180)
        all_scored_s = time.monotonic() - killed_at
        stream.done.wait(timeout=60)
    finally:
        producer.close(timeout=10)
        reader.stop()
        alive = worker.poll() is None
        stop_worker(worker)
    rb = reader.snapshot()
    counts = {
        "events": len(ids),
        "scored_distinct": len(ids & rb.scored_ids),
        "lost": len(ids - rb.scored_ids),
        "duplicate_score_mentions": rb.duplicates(ids),
        "killed_node": victim,
        "scored_before_kill": scored_at_kill,
        "isr_while_down": min(t["min_isr"] or 0 for t in degraded.values()),
        "kill_to_scoring_again_s": round(resumed_s, 1),
        "broker_restart_to_registered_s": round(rejoined_s, 1),
        "broker_restart_to_full_isr_s": round(isr_restored_s, 1),
        "kill_to_all_scored_s": round(all_scored_s, 1),
        "producer_send_retries": stream.send_errors,
        "producer_delivery_failures": stream.delivery_failures,
        "worker_alive_after": alive,
    }
    report(results_dir, "cluster_broker_kill", counts)
    assert stream.delivery_failures == 0, "the test's producer gave up on records"
    assert all_scored and counts["lost"] == 0, counts
    assert counts["isr_while_down"] == 2, "with one of three brokers down, two replicas stay in sync"
    assert alive, "the worker must ride through the broker loss, not exit"
