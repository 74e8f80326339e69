"""The dashboard's feed thread keeps reading whatever fails (agents/web/kafka_feed.py): a record the
ward model cannot apply is counted and skipped, a client that fails is replaced and resumes where the
feed was (not a second backfill), and a broker unreached for long puts "This page is not being
updated" in the header."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import pytest
from kafka import TopicPartition
from web_builders import risk_score

from vigil.agents.web import kafka_feed, metrics
from vigil.agents.web.kafka_feed import FEED_STALE_AFTER_S, FeedHealth, KafkaWardFeed
from vigil.infra.settings import Settings
from vigil.schemas import topics

Record = namedtuple("Record", "offset value")
SCORES0 = TopicPartition(topics.SCORES, 0)


def score(pid: str, hour: int) -> bytes:
    return risk_score(pid, hour, 3, "low").model_dump_json().encode()


class FakeConsumer:
    """One partition per feed topic; ``polls`` are handed out in turn (an exception is raised),
    then the feed is stopped."""

    def __init__(self, feed: KafkaWardFeed, polls: list[Any], end: int = 0) -> None:
        self.feed, self.polls, self.end = feed, list(polls), end
        self.seeks: dict[Any, int] = {}
        self.closed = False

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def assign(self, parts: list[Any]) -> None:
        self.parts = parts

    def beginning_offsets(self, parts: list[Any]) -> dict[Any, int]:
        return dict.fromkeys(parts, 0)

    def end_offsets(self, parts: list[Any], timeout_ms: int | None = None) -> dict[Any, int]:
        return dict.fromkeys(parts, self.end)

    def seek(self, tp: Any, offset: int) -> None:
        self.seeks[tp] = offset

    def position(self, tp: Any) -> int:
        return self.end

    def poll(self, timeout_ms: int, max_records: int) -> dict[Any, list[Record]]:
        if not self.polls:
            self.feed._stop.set()
            return {}
        batch = self.polls.pop(0)
        if isinstance(batch, Exception):
            raise batch
        return batch

    def close(self) -> None:
        self.closed = True


def feed_on(monkeypatch: pytest.MonkeyPatch, consumers: list[Any]) -> KafkaWardFeed:
    feed = KafkaWardFeed(Settings(), backfill=100)
    made = iter(consumers)

    def next_consumer(settings: Settings, **options: Any) -> Any:
        consumer = next(made, None)
        if consumer is None:  # more clients than the test planned: stop there
            feed._stop.set()
            raise ConnectionRefusedError
        if isinstance(consumer, Exception):
            raise consumer
        return consumer(feed)

    monkeypatch.setattr(kafka_feed, "kafka_consumer", next_consumer)
    monkeypatch.setattr(feed, "_update_fleet", lambda: None)  # Redis: not in these tests
    return feed


def test_a_record_the_model_cannot_apply_is_counted_and_the_feed_reads_on(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = {SCORES0: [Record(0, score("p1", 1)), Record(1, score("p2", 1)), Record(2, score("p3", 1))]}
    feed = feed_on(monkeypatch, [lambda f: FakeConsumer(f, [batch])])
    apply = feed.model.apply

    def apply_but_p2(topic: str, value: bytes) -> Any:
        if b'"p2"' in value:
            raise KeyError("a bug in the ward model")
        return apply(topic, value)

    monkeypatch.setattr(feed.model, "apply", apply_but_p2)
    errors = metrics.FEED_ERRORS.labels(topics.SCORES)._value.get()
    feed._run()
    assert len(feed.model) == 2  # p1 and p3
    assert metrics.FEED_ERRORS.labels(topics.SCORES)._value.get() == errors + 1


def test_a_failing_client_is_replaced_and_resumes_where_the_feed_was(monkeypatch: pytest.MonkeyPatch) -> None:
    first = {SCORES0: [Record(40, score("p1", 1)), Record(41, score("p2", 1))]}
    clients: list[FakeConsumer] = []

    def client(polls: list[Any]) -> Any:
        def make(feed: KafkaWardFeed) -> FakeConsumer:
            clients.append(FakeConsumer(feed, polls, end=42))
            return clients[-1]

        return make

    feed = feed_on(
        monkeypatch,
        [client([first, ConnectionResetError()]), ConnectionRefusedError(), client([])],
    )
    feed._run()
    assert len(clients) == 2 and clients[0].closed
    assert clients[0].seeks[SCORES0] == 0  # the first: the backfill (the last 100 of 42)
    assert clients[1].seeks[SCORES0] == 42  # the replacement: after the last record read, not the backfill again
    assert len(feed.model) == 2


def test_a_broker_unreached_for_long_says_the_page_is_not_being_updated() -> None:
    now = [1000.0]
    health = FeedHealth(lambda: now[0])
    assert health.indicators() == {}
    health.down()
    now[0] += FEED_STALE_AFTER_S - 1
    health.down()  # still down: counted from the first failure
    assert health.indicators() == {}
    now[0] += 1
    (found,) = health.indicators().values()
    assert found["level"] == "critical" and found["text"].startswith("This page is not being updated")
    health.up()
    assert health.indicators() == {}


def test_the_header_shows_it_from_the_feed_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    feed = feed_on(monkeypatch, [ConnectionRefusedError(), lambda f: FakeConsumer(f, [])])
    now = [1000.0]
    feed.health = FeedHealth(lambda: now[0])
    statuses: list[list[str]] = []
    set_status = feed.set_status

    def recorded(statuses_: dict[str, dict[str, str]], names: Any) -> None:
        set_status(statuses_, names)
        statuses.append(sorted(feed.ward_status))

    monkeypatch.setattr(feed, "set_status", recorded)
    feed.health.down()
    now[0] += FEED_STALE_AFTER_S  # down this long when the next connection fails
    feed._run()
    assert ["feed"] in statuses  # shown while the broker was unreached
    assert statuses[-1] == []  # and gone once the feed read it again
