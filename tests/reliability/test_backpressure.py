"""A burst faster than the worker scores: lag grows, then drains; the worker's memory stays bounded.

The burst goes as fast as the client sends (33x the normal rate on the dev machine, 9.3x on a
loaded CI runner). Its rate is a figure in the report, not an assertion: what makes it a burst for
this test is that it outruns the worker, which the peak lag shows.
"""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

from tests.conftest import wait_for
from tests.reliability.helpers import event_payloads, lag, report, rss_kb, ward_stream

pytestmark = pytest.mark.reliability

NORMAL_RATE = 200  # events/s of the other fault tests (a 200-bed hospital's monitors, hourly sets)
BURST_EVENTS = 20_000
RSS_GROWTH_LIMIT_MB = 400  # bounded: buffers are capped (stream_buffer_maxsize, take() batches)


def test_burst_is_absorbed_and_memory_stays_bounded(
    stack, stack_settings, started_worker, producer, reader, results_dir
) -> None:
    worker = started_worker("burst")
    r = reader()
    events = ward_stream("burst", patients=200, hours=20)  # 20,000 events
    assert len(events) == BURST_EVENTS
    ids = {e.event_id for e in events}
    payloads = event_payloads(events)
    baseline_kb = rss_kb(worker.pid) or 0
    samples: list[tuple[float, int]] = []
    lags: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        t0 = time.monotonic()
        n = 0
        while not stop.is_set():
            kb = rss_kb(worker.pid)
            if kb:
                samples.append((time.monotonic() - t0, kb))
            if n % 4 == 0:  # lag every second: the admin client is not free
                with contextlib.suppress(Exception):  # a lag sample is best effort
                    total = lag(stack_settings, "vigil.events.raw")
                    lags.append((time.monotonic() - t0, total))
            n += 1
            stop.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.monotonic()
    for key, value in payloads:  # as fast as the client goes
        producer.send("vigil.events.raw", key=key, value=value)
    producer.flush()
    produce_s = time.monotonic() - t0
    drained = wait_for(lambda: ids <= r.snapshot().scored_ids, timeout=240, interval=0.5)
    drain_s = time.monotonic() - t0
    time.sleep(1.5)
    stop.set()
    sampler.join(timeout=10)
    rb = r.snapshot()
    peak_kb = max(kb for _, kb in samples)
    end_kb = samples[-1][1]
    peak_lag = max((v for _, v in lags), default=0)
    counts = {
        "events": BURST_EVENTS,
        "lost": len(ids - rb.scored_ids),
        "duplicate_score_mentions": rb.duplicates(ids),
        "produce_rate_per_s": round(BURST_EVENTS / produce_s),
        "rate_vs_normal": round(BURST_EVENTS / produce_s / NORMAL_RATE, 1),
        "drain_s": round(drain_s, 1),
        "throughput_per_s": round(BURST_EVENTS / drain_s),
        "peak_lag": peak_lag,
        "final_lag": lags[-1][1] if lags else None,
        "rss_baseline_mb": round(baseline_kb / 1024, 1),
        "rss_peak_mb": round(peak_kb / 1024, 1),
        "rss_end_mb": round(end_kb / 1024, 1),
        "rss_samples": len(samples),
    }
    report(results_dir, "backpressure", counts)
    assert drained and counts["lost"] == 0
    assert peak_lag > 0, "the burst must outrun the worker and build up lag"
    assert (peak_kb - baseline_kb) / 1024 < RSS_GROWTH_LIMIT_MB
    assert worker.poll() is None
