"""The dashboard's fleet indicator (agents/web/fleet.py): the header says when no worker is scoring
and when two bundles or thresholds score at once; it reaches the page's state and live browsers."""

from __future__ import annotations

import asyncio

from fleet_cards import card
from web_builders import sign_in

from vigil.agents.web.feed import WardFeed
from vigil.agents.web.fleet import fleet_indicators


def test_no_indicator_while_one_configuration_scores() -> None:
    assert fleet_indicators([card("a"), card("b"), card("t", "2.7.0", scoring=False)]) == {}


def test_no_scoring_worker_is_critical() -> None:
    found = fleet_indicators([card("t", scoring=False)])["fleet"]
    assert found["level"] == "critical" and "No worker is scoring" in found["text"]
    assert fleet_indicators([]) == {"fleet": found}


def test_two_bundles_at_once_is_a_warning_naming_both() -> None:
    found = fleet_indicators([card("a"), card("b"), card("c", "2.7.0", 0.06)])["fleet"]
    assert found["level"] == "warning" and "2 bundles or thresholds" in found["text"]
    assert "bundle 2.6.0 at threshold 0.0558 (2 workers)" in found["title"]
    assert "bundle 2.7.0 at threshold 0.06 (1 worker)" in found["title"]


def test_a_worker_not_reading_some_partitions_is_critical_and_outranks_two_bundles() -> None:
    found = fleet_indicators([card("a", stalled_partitions=1), card("b"), card("c", "2.7.0", 0.06)])["fleet"]
    assert found["level"] == "critical" and "Some patients' scores are not being updated" in found["text"]
    assert found["title"].startswith("1 partition held by a with events waiting")
    two = fleet_indicators([card("a", stalled_partitions=1), card("b", stalled_partitions=2)])["fleet"]
    assert two["title"].startswith("3 partitions held by a, b")


def test_a_stalled_worker_of_the_treatment_group_leaves_the_scores_banner_down() -> None:
    """Its stall holds no patient's risk scores or alerts back (it holds no partition of the scoring
    input): "Some patients' scores are not being updated" would send a clinician after a fault that
    is not there. It is said, as a warning naming its group."""
    treat = card("t", app_id="vigil-treat", scoring=False, partitions=0, stalled_partitions=1)
    elsewhere = fleet_indicators([card("a"), treat])["fleet"]
    assert elsewhere["level"] == "warning" and "scores are not being updated" not in elsewhere["text"]
    assert "t (vigil-treat)" in elsewhere["title"]
    scoring = fleet_indicators([card("a", stalled_partitions=1), treat])["fleet"]
    assert scoring["title"].startswith("1 partition held by a with events waiting")  # t not counted


def test_the_indicator_reaches_the_state_and_live_browsers(client, feed: WardFeed) -> None:
    sign_in(client, "ann")
    assert client.get("/api/state").json()["ward_status"] == []
    loop = asyncio.new_event_loop()
    try:
        feed.start(loop)
        queue = feed.subscribe()
        feed.set_status(fleet_indicators([]), ["fleet"])
        feed.set_status(fleet_indicators([]), ["fleet"])  # unchanged: nothing sent again
        loop.run_until_complete(asyncio.sleep(0))
        assert queue.qsize() == 1
        (status,) = queue.get_nowait()["status"]  # type: ignore[index]
        assert status["level"] == "critical"
        assert client.get("/api/state").json()["ward_status"] == [status]
        feed.set_status(fleet_indicators([card("a")]), ["fleet"])  # a worker is back: the indicator goes
        loop.run_until_complete(asyncio.sleep(0))
        assert queue.get_nowait() == {"status": []}
        assert client.get("/api/state").json()["ward_status"] == []
    finally:
        loop.close()
