"""Restart the Kafka broker mid-stream: producers and workers reconnect, nothing is lost."""

from __future__ import annotations

import time

import pytest

from tests.conftest import wait_for
from tests.reliability.helpers import (
    PacedProducer,
    event_payloads,
    gateway_producer,
    report,
    restart_broker,
    ward_stream,
)

pytestmark = pytest.mark.reliability


def test_broker_restart_mid_stream_loses_nothing(stack, stack_settings, started_worker, reader, results_dir) -> None:

    worker = started_worker("broker-restart")
    r = reader()
    events = ward_stream("broker", patients=50, hours=12)  # 3,000 events over ~20 s
    ids = {e.event_id for e in events}
    producer = gateway_producer(stack_settings)
    try:
        stream = PacedProducer(producer, event_payloads(events), rate_per_s=150).start()
        assert wait_for(lambda: len(ids & r.snapshot().scored_ids) >= 600, timeout=60)
        t0 = time.monotonic()
        restart_broker(stack_settings)  # SIGTERM, wait, start on the same port and log dirs
        restart_s = time.monotonic() - t0
        up_at = time.monotonic()
        all_scored = wait_for(lambda: ids <= r.snapshot().scored_ids, timeout=150)
        caught_up_s = time.monotonic() - up_at
        stream.done.wait(timeout=60)
    finally:
        producer.close(timeout=10)
    rb = r.snapshot()
    counts = {
        "events": len(ids),
        "lost": len(ids - rb.scored_ids),
        "duplicate_score_mentions": rb.duplicates(ids),
        "broker_down_and_restart_s": round(restart_s, 1),
        "caught_up_after_restart_s": round(caught_up_s, 1),
        "producer_send_retries": stream.send_errors,
        "producer_delivery_failures": stream.delivery_failures,
        "worker_alive_after": worker.poll() is None,
    }
    report(results_dir, "broker_restart", counts)
    assert stream.delivery_failures == 0, "the test's producer gave up on records"
    assert all_scored and counts["lost"] == 0
    assert worker.poll() is None, "the worker must reconnect, not exit"
