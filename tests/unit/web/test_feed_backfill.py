"""The feed's backfill: applied to the ward model but never pushed to browsers, and not ready until done.

A dashboard started on a busy cluster replays thousands of old records; pushing them through every SSE
queue (2,000 deep) overflowed it and dropped the client (tests/integration/test_web.py failed in CI).
"""

from __future__ import annotations

import asyncio

from web_builders import risk_score

from vigil.agents.web.feed import WardFeed
from vigil.infra.settings import Settings
from vigil.schemas import topics


def score(pid: str, hour: int) -> bytes:
    return risk_score(pid, hour, 3, "low").model_dump_json().encode()


def test_backfill_updates_the_ward_but_reaches_no_browser_and_is_not_ready() -> None:
    async def run() -> tuple[int, int, bool, list[object]]:
        feed = WardFeed(Settings())
        feed.caught_up = False  # what KafkaWardFeed starts with
        feed.start(asyncio.get_running_loop())
        queue = feed.subscribe()
        for i in range(3000):  # more than one client's queue holds
            feed.ingest(topics.SCORES, score(f"p{i}", 1))
        await asyncio.sleep(0)
        during = queue.qsize()
        ready_during = all(feed.readiness().values())
        feed.backfill_done()
        await asyncio.sleep(0)
        # a browser connected during the backfill missed its changes: its stream ends (it reconnects)
        ended = [queue.get_nowait() for _ in range(queue.qsize())]
        live = feed.subscribe()
        feed.ingest(topics.SCORES, score("p-live", 2))
        await asyncio.sleep(0)
        return during, len(feed.model), ready_during, [*ended, live.qsize()]

    during, patients, ready_during, after = asyncio.run(run())
    assert during == 0 and patients == 2000  # the model keeps its newest max_patients rows
    assert ready_during is False
    assert after == [None, 1]


def test_a_feed_without_backfill_is_live_and_ready() -> None:
    feed = WardFeed(Settings())
    assert feed.caught_up and all(feed.readiness().values())
