"""The dashboard feed on Kafka: a kafka-python consumer thread (assign + seek, no consumer group, so every
dashboard process sees every record) and a producer for acknowledgements and FHIR intake.

The consumer reads ``vigil.scores``, ``vigil.alerts``, ``vigil.treatment.scores`` and ``vigil.drift``
and hands each record to ``WardFeed.ingest``; every few seconds the same thread reads the workers'
cards from Redis (``infra.fleet``: the only Redis read of the feed) for the header's fleet indicator.
On start it backfills the last ``backfill`` records of every partition so the first page load shows
the open alerts without waiting for the next score;
``/readyz`` stays 503 until that backfill is applied, and backfilled records are not pushed to browsers.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from vigil.agents.web import metrics
from vigil.agents.web.feed import WardFeed
from vigil.agents.web.fleet import FLEET_EVERY_S, fleet_indicators
from vigil.agents.web.readiness import RedisPing, broker_reachable
from vigil.infra.connect import kafka_bootstrap, kafka_consumer, kafka_producer, redis_client
from vigil.infra.fleet import read_fleet
from vigil.infra.logging import get_logger
from vigil.infra.publish import send_and_wait
from vigil.infra.redis import places_read, queue_places, queue_places_read
from vigil.infra.settings import Settings
from vigil.schemas import topics
from vigil.schemas.codecs.fhir_places import EncounterKey, Place

log = get_logger("vigil.web.feed")

FEED_TOPICS = (topics.SCORES, topics.ALERTS, topics.TREATMENT_SCORES, topics.DRIFT, topics.STAYS)


# the broker unanswered this long (the feed's client failing or unable to connect): the page says
# its scores may be out of date
FEED_STALE_AFTER_S = 15.0


class FeedHealth:
    """Whether the feed reads the broker now: down since its first failure, up at the next answer.
    Down for ``FEED_STALE_AFTER_S``, the header says the page is not being updated (a clinician must
    not read scores that stopped moving as current; the "live" dot only tells the browser's link to
    this server)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._down_since: float | None = None

    def up(self) -> None:
        self._down_since = None

    def down(self) -> None:
        if self._down_since is None:
            self._down_since = self._clock()

    def indicators(self) -> dict[str, dict[str, str]]:
        if self._down_since is None:
            return {}
        down_s = self._clock() - self._down_since
        if down_s < FEED_STALE_AFTER_S:
            return {}
        return {
            "feed": {
                "level": "critical",
                "text": "This page is not being updated: scores and alerts may be out of date",
                "title": f"the dashboard's server has not reached the broker for {FEED_STALE_AFTER_S:.0f} s or more; "
                "it retries by itself (its log: feed_connect_failed, feed_failed)",
            }
        }


class KafkaWardFeed(WardFeed):
    """``WardFeed`` with a kafka-python consumer thread (assign + seek, no consumer group: every
    dashboard process sees every record) and a producer for acks and FHIR intake."""

    def __init__(self, settings: Settings, backfill: int = 5000, max_patients: int = 2000) -> None:
        super().__init__(settings, max_patients)
        self.bootstrap = kafka_bootstrap(settings)  # clients come from infra.connect (credentials included)
        self.backfill = backfill
        self.assigned = False
        self.broker_ok = False
        self.caught_up = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vigil-web-feed", daemon=True)
        self._producer: Any = None
        self._producer_lock = threading.Lock()
        self._redis_ping = RedisPing(settings)
        self._fleet_client: Any = None
        self._places_client: Any = None
        self._next: dict[Any, int] = {}  # the next offset to read of each partition, kept across reconnections
        self.health = FeedHealth()

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        super().start(loop)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        super().stop()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._producer is not None:
            self._producer.close(timeout=5)

    def _run(self) -> None:
        """Read the feed until stopped, whatever fails: a broker away, a client error, a record the
        ward model cannot apply. The page says when it is not current (``FeedHealth``)."""
        while not self._stop.is_set():
            try:
                self._consume()
            except Exception as exc:  # the client in a state of its own: a fresh one, from where it was
                log.error("feed_failed", error=type(exc).__name__)
                self.assigned = self.broker_ok = False
                self._health_changed(ok=False)
                self._stop.wait(2.0)

    def _connect(self) -> tuple[Any, list[Any], dict[Any, int]] | None:
        """A consumer assigned every partition of the feed topics, each at the position the feed had
        reached (at first: the last ``backfill`` records); None once stopped."""
        from kafka import TopicPartition

        while not self._stop.is_set():
            consumer = None
            try:
                consumer = kafka_consumer(
                    self.settings, group_id=None, enable_auto_commit=False, client_id="vigil-web-feed"
                )
                parts = [
                    TopicPartition(t, p) for t in FEED_TOPICS for p in sorted(consumer.partitions_for_topic(t) or ())
                ]
                if len({tp.topic for tp in parts}) < len(FEED_TOPICS):
                    raise RuntimeError("feed topics not created yet")
                consumer.assign(parts)
                begin, end = consumer.beginning_offsets(parts), consumer.end_offsets(parts)
                for tp in parts:
                    consumer.seek(tp, max(begin[tp], self._next.get(tp, end[tp] - self.backfill)))
                return consumer, parts, end
            except Exception as exc:  # broker down or topics missing: not ready, retry
                log.warning("feed_connect_failed", error=type(exc).__name__)
                self.broker_ok = False
                self._health_changed(ok=False)
                if consumer is not None:
                    consumer.close()
                self._stop.wait(2.0)
        return None

    def _consume(self) -> None:
        connected = self._connect()
        if connected is None:
            return
        consumer, parts, end = connected
        self.assigned = self.broker_ok = True
        self._health_changed(ok=True)
        log.info("feed_assigned", partitions=len(parts), backfill=self.backfill, resumed=bool(self._next))
        backfill_end = {tp: end[tp] for tp in parts if end[tp] > consumer.position(tp)}
        next_lag = next_fleet = 0.0
        try:
            while not self._stop.is_set():
                batches = consumer.poll(timeout_ms=250, max_records=2000)
                for tp, records in batches.items():
                    for record in records:
                        self._apply(tp, record)
                        self._next[tp] = record.offset + 1
                if not self.caught_up:
                    backfill_end = {tp: e for tp, e in backfill_end.items() if consumer.position(tp) < e}
                    if not backfill_end:
                        log.info("feed_caught_up", patients=len(self.model))
                        self.backfill_done()
                if time.monotonic() >= next_lag:
                    next_lag = time.monotonic() + 5.0
                    self._update_lag(consumer, parts)
                if time.monotonic() >= next_fleet:
                    next_fleet = time.monotonic() + FLEET_EVERY_S
                    self._update_fleet()
        finally:
            consumer.close()
            self.assigned = False

    def _apply(self, tp: Any, record: Any) -> None:
        """One record into the ward model; one it cannot apply is counted and logged, never stops the
        feed (the model already counts those that fail validation)."""
        if record.value is None:
            return
        try:
            self.ingest(tp.topic, record.value)
        except Exception as exc:
            metrics.FEED_ERRORS.labels(tp.topic).inc()
            log.error(
                "feed_record_failed",
                topic=tp.topic,
                partition=tp.partition,
                offset=record.offset,
                error=type(exc).__name__,
            )

    def _health_changed(self, ok: bool) -> None:
        (self.health.up if ok else self.health.down)()
        self.set_status(self.health.indicators(), ["feed"])

    def _update_lag(self, consumer: Any, parts: list[Any]) -> None:
        try:
            ends = consumer.end_offsets(parts, timeout_ms=5000)  # kafka-python's default waits 30 s
        except Exception as exc:
            log.warning("feed_lag_failed", error=type(exc).__name__)
            self.broker_ok = False
            self._health_changed(ok=False)
            return
        self.broker_ok = True
        self._health_changed(ok=True)
        lag: dict[str, int] = dict.fromkeys(FEED_TOPICS, 0)
        for tp in parts:
            lag[tp.topic] += max(0, ends[tp] - consumer.position(tp))
        for topic, value in lag.items():
            metrics.FEED_LAG.labels(topic).set(value)

    def _update_fleet(self) -> None:
        """The workers' cards in Redis -> the header's fleet indicator (unchanged while Redis is away:
        readiness reports that)."""
        try:
            if self._fleet_client is None:
                self._fleet_client = redis_client(self.settings, socket_timeout=2, socket_connect_timeout=2)
            cards = read_fleet(self._fleet_client)
        except Exception as exc:
            log.warning("feed_fleet_failed", error=type(exc).__name__)
            return
        self.set_status(fleet_indicators(cards), ["fleet"])

    def _places_redis(self) -> Any:
        if self._places_client is None:
            self._places_client = redis_client(self.settings, socket_timeout=2, socket_connect_timeout=2)
        return self._places_client

    def kept_places(self, encounter_ids: Sequence[EncounterKey]) -> dict[EncounterKey, tuple[Place, ...]]:
        """The workers' store of FHIR Encounters' units (``infra.redis.places_key``): the same one
        the FHIR agent keeps. Raises Redis's error when it is away (the request is answered 503)."""
        ids = list(encounter_ids)
        if not ids:
            return {}
        pipe = self._places_redis().pipeline(transaction=False)
        queue_places_read(pipe, ids, self.settings.redis.ttl_s)
        return places_read(ids, pipe.execute())

    def keep_places(self, encounters: dict[EncounterKey, tuple[Place, ...]]) -> None:
        if not encounters:
            return
        pipe = self._places_redis().pipeline(transaction=False)
        queue_places(pipe, encounters, self.settings.redis.ttl_s)
        pipe.execute()

    def readiness(self) -> dict[str, Any]:
        return {
            "broker": self.broker_ok and broker_reachable(self.bootstrap),
            "redis": self._redis_ping(),
            "feed_assigned": self.assigned,
            "feed_caught_up": self.caught_up,
        }

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        self.produce_many([(topic, key, value)])

    def produce_many(self, records: list[tuple[str, bytes, bytes]]) -> None:
        """Send and wait for the broker's ack (acks=all): the HTTP answer means it is durable."""
        with self._producer_lock:
            if self._producer is None:
                self._producer = kafka_producer(self.settings, linger_ms=2, retries=5, client_id="vigil-web")
            send_and_wait(self._producer, records)
