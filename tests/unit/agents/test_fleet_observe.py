"""The worker's view of its fleet (agents/fleet.py): gauges of its own consumer group, and one log
line when the group turns mixed and one when it is uniform again, not one every announcement."""

from __future__ import annotations

import pytest
import structlog
from fleet_cards import card

from vigil.agents import fleet
from vigil.infra import metrics


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fleet._state, "mixed", None)


def test_a_mixed_group_is_logged_once_and_its_end_too() -> None:
    uniform = [card("a"), card("b"), card("x", "2.7.0", app_id="other")]
    rollout = [*uniform, card("c", "2.7.0")]
    with structlog.testing.capture_logs() as logs:
        fleet.observe_fleet(uniform, "vigil")
        assert metrics.FLEET_WORKERS._value.get() == 2 and metrics.FLEET_CONFIGURATIONS._value.get() == 1
        for _ in range(3):
            fleet.observe_fleet(rollout, "vigil")
        assert metrics.FLEET_WORKERS._value.get() == 3 and metrics.FLEET_CONFIGURATIONS._value.get() == 2
        fleet.observe_fleet(uniform, "vigil")
    assert [e["event"] for e in logs] == ["fleet.mixed", "fleet.uniform"]
    assert [s["bundle"] for s in logs[0]["serving"]] == ["2.6.0", "2.7.0"]


def test_the_same_mix_read_in_another_order_is_not_logged_again() -> None:
    shipped, site = [card("a"), card("b", threshold=0.0233)], [card("b", threshold=0.0233), card("a")]
    with structlog.testing.capture_logs() as logs:
        for cards in (shipped, site, shipped):  # one worker each: which comes first is the order Redis read them
            fleet.observe_fleet(cards, "vigil")
    assert [e["event"] for e in logs] == ["fleet.mixed"]


def test_this_workers_card_says_what_it_serves() -> None:
    from vigil.models.bundle import load_stepping_bundle

    bundle = load_stepping_bundle(prefer_gpu=False)
    c = fleet.this_card(bundle, partitions=3, scoring=True, app_id="vigil")
    assert (c.bundle_version, c.state_tag) == (bundle.version, f"{bundle.state_tag:08x}")
    assert c.alert_threshold == round(bundle.alert_threshold.threshold, 6) and c.threshold_rule == "shipped"
    assert c.bundle_sha256 is not None and len(c.bundle_sha256) == 64
    rules = fleet.this_card(None, partitions=0, scoring=True, app_id="vigil")
    assert rules.bundle_version is None and rules.alert_threshold is None
    assert c.stalled_partitions == 0
    assert (
        fleet.this_card(None, partitions=2, scoring=True, app_id="vigil", stalled_partitions=1).stalled_partitions == 1
    )


def test_the_worker_announces_itself_once_at_start_not_one_interval_later(monkeypatch: pytest.MonkeyPatch) -> None:
    """Faust's timer first fires one interval after the start: a start task announces at once (the
    dashboard says "No worker is scoring" until a card is read), then returns."""
    import asyncio

    from vigil.agents.app import app

    calls: list[None] = []

    async def announce() -> None:
        calls.append(None)

    monkeypatch.setattr(fleet, "_announce", announce)
    assert fleet.announce_at_start in app._app_tasks  # started with the app
    asyncio.run(asyncio.wait_for(fleet.announce_at_start(), timeout=2))
    assert len(calls) == 1


def test_a_blocked_loop_announces_its_partitions_as_stalled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop watch's thread (agents/loop.py) keeps the card saying so while the loop is blocked:
    every partition held counts, at most every ANNOUNCE_EVERY_S, and Redis away costs nothing."""
    from datetime import UTC, datetime

    from redis.exceptions import ConnectionError as RedisConnectionError

    card = fleet.this_card(None, partitions=3, scoring=True, app_id="vigil")
    now = datetime(2026, 12, 6, tzinfo=UTC)
    assert fleet.blocked_card(card, now).stalled_partitions == 3 and fleet.blocked_card(card, now).seen_at == now
    spare = fleet.this_card(None, partitions=0, scoring=True, app_id="vigil")
    assert fleet.blocked_card(spare, now).stalled_partitions == 0  # more workers than partitions: holds none
    treat = fleet.this_card(None, partitions=0, scoring=False, app_id="vigil-treat")
    assert fleet.blocked_card(treat, now).stalled_partitions == 1  # not reading the scores it treats
    seen = fleet.this_card(None, partitions=0, scoring=True, app_id="vigil", stalled_partitions=2)
    assert fleet.blocked_card(seen, now).stalled_partitions == 2  # the stalls seen before the block stand

    written: list[str] = []

    class Client:
        fail = False

        def set(self, key: str, value: str, ex: int) -> None:
            if self.fail:
                raise RedisConnectionError("away")
            written.append(value)

    client = Client()
    monkeypatch.setattr("vigil.infra.connect.redis_client", lambda *a, **kw: client)
    clock = [1000.0]
    monkeypatch.setattr(fleet.time, "monotonic", lambda: clock[0])
    monkeypatch.setitem(fleet._state, "card", None)
    announce = fleet.blocked_announcer(object())
    announce()
    assert written == []  # no card announced yet: nothing to say
    monkeypatch.setitem(fleet._state, "card", card)
    announce()
    announce()  # within ANNOUNCE_EVERY_S: once
    assert len(written) == 1 and '"stalled_partitions":3' in written[0]
    clock[0] += fleet.fleet.ANNOUNCE_EVERY_S
    client.fail = True
    announce()  # Redis away: logged, not raised
    assert len(written) == 1


def test_a_blocked_worker_announces_the_partitions_it_holds_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """The last card may be older than an assignment: a spare that took a stalled worker's partitions
    and blocked on the same batch still read as holding none, and no stall was shown."""
    from collections import namedtuple
    from types import SimpleNamespace

    tp = namedtuple("tp", "topic partition")
    stale = fleet.this_card(None, partitions=0, scoring=True, app_id="vigil")
    held = {tp("vigil.events.raw", 0), tp("vigil.events.raw", 5), tp("vigil.alerts.acks", 0)}
    monkeypatch.setattr(fleet, "app", SimpleNamespace(consumer=SimpleNamespace(assignment=lambda: held)))
    assert fleet.with_partitions_now(stale).partitions == 2

    def not_started() -> set[object]:
        raise RuntimeError("no consumer yet")

    monkeypatch.setattr(fleet, "app", SimpleNamespace(consumer=SimpleNamespace(assignment=not_started)))
    assert fleet.with_partitions_now(stale) == stale  # the last card stands
