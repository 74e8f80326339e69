"""The dashboard's in-process feed: the ward model, server-sent-event fan-out and a recording producer.

``WardFeed`` is what the app and the unit tests use as is (it records what it would produce);
``kafka_feed.KafkaWardFeed`` adds the consumer thread and the real producer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from vigil.agents.web import metrics
from vigil.agents.web.ward import WardModel
from vigil.infra.settings import Settings
from vigil.schemas.codecs.fhir_places import EncounterKey, Place
from vigil.schemas.display import ward_zone

# shown in the page header while the start-up backfill is read (``WardFeed.caught_up`` false)
LOADING_STATUS: dict[str, str] = {
    "level": "warning",
    "text": "loading: not every patient shown yet",
    "title": "the dashboard is reading the latest scores and alerts after a start; the page reloads once it has",
}
# how often the wards no worker reports any more are forgotten (``DriftSettings.stale_after_s``: 300 s
# by default): a ward that fell silent brings no record that would forget it
DRIFT_EXPIRE_EVERY_S = 30.0


class WardFeed:
    """The in-process feed: ward model, SSE fan-out and a producer. Tests use it as is (records what
    it would produce); ``KafkaWardFeed`` adds the consumer thread and the real producer."""

    def __init__(self, settings: Settings, max_patients: int = 2000) -> None:
        self.settings = settings
        zone = ward_zone(settings.ward_timezone)
        self.model = WardModel(settings.log_hash_key.get_secret_value().encode(), max_patients, zone)
        # ward-level indicators shown in the page header (e.g. a model drift warning): name -> {text, level}
        self.ward_status: dict[str, dict[str, str]] = {}
        self.produced: list[tuple[str, bytes, bytes]] = []
        self._clients: set[asyncio.Queue[dict[str, Any] | None]] = set()
        # Orders the model's changes with subscriptions: a change reaches the clients subscribed before
        # it was applied, and is in the state a client subscribed after it receives (once, never both)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.assigned = True
        self.broker_ok = True
        # False while a consumer replays its backfill: those records rebuild the ward model but are
        # not pushed to browsers (thousands of old rows would overflow every client's queue)
        self.caught_up = True
        self._places: dict[EncounterKey, tuple[Place, ...]] = {}  # FHIR Encounters' units (Redis in KafkaWardFeed)
        self._stopped = False

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.call_later(DRIFT_EXPIRE_EVERY_S, self._expire_drift_every)

    def stop(self) -> None:
        self._stopped = True  # from any thread: the drift timer stops at its next run
        self._end_streams()

    def _expire_drift_every(self) -> None:
        """On the event loop, every ``DRIFT_EXPIRE_EVERY_S`` until stopped."""
        if self._stopped or self._loop is None:
            return
        self.expire_drift()
        self._loop.call_later(DRIFT_EXPIRE_EVERY_S, self._expire_drift_every)

    def expire_drift(self) -> list[str]:
        """Forget the wards no worker reports any more (``WardDriftBoard.expire``), their /metrics
        series with them, and send open pages the wards' drift without them: run only on a record or
        a read, a ward that fell silent kept its "drifted" header on every open page for good. Sent
        whenever what the pages show changed: a worker's share that went stale while another's stays
        changes the ward's shown share though the ward is not gone."""
        with self._lock:  # ordered with the records' changes, as they are
            gone = self.model.drift.expire()
            changed = self.model.drift.unsent()
            if changed is not None and self.caught_up:
                self._deliver({"drift": changed}, tuple(self._clients))
        return gone

    def _end_streams(self) -> None:
        with self._lock:
            clients = tuple(self._clients)
        for q in clients:
            self._offer(q, None)

    # --- readiness -------------------------------------------------------------------------------
    def readiness(self) -> dict[str, Any]:
        return {
            "broker": self.broker_ok,
            "redis": True,
            "feed_assigned": self.assigned,
            "feed_caught_up": self.caught_up,
        }

    def set_status(self, statuses: dict[str, dict[str, str]], names: Sequence[str]) -> None:
        """Replace the indicators ``names`` with ``statuses`` (from any thread); browsers get the
        header's indicators again when they changed."""
        with self._lock:
            merged = {k: v for k, v in self.ward_status.items() if k not in names} | statuses
            if merged == self.ward_status:
                return
            self.ward_status = merged
            self._deliver({"status": self._header_status()}, tuple(self._clients))

    def _header_status(self) -> list[dict[str, str]]:
        """The header's indicators; while the backfill is read, first that the ward is not whole yet
        (a page loaded meanwhile shows the patients read so far: one not shown is not one who is well)."""
        loading = [] if self.caught_up else [LOADING_STATUS]
        return [*loading, *self.ward_status.values()]

    def state(self) -> dict[str, Any]:
        """The ward as a page shows it: every card, the recent transitions, drift and the header's
        indicators (``/api/state``, and the first event of a stream that asks for it)."""
        with self._lock:  # not while a record is applied (from the consumer's thread)
            return self._state()

    def _state(self) -> dict[str, Any]:
        # ``server_now``: the page counts "N min ago" and "due in N min" from the server's clock, not
        # from a browser's that may be minutes off
        server_now = datetime.now(UTC).isoformat(timespec="milliseconds")
        return {"ward_status": self._header_status(), "server_now": server_now, **self.model.snapshot()}

    # --- FHIR Encounters' units, for results sent apart from them (``DecodeResult.placed``) -------
    def kept_places(self, encounter_ids: Sequence[EncounterKey]) -> dict[EncounterKey, tuple[Place, ...]]:
        return {e: self._places[e] for e in encounter_ids if e in self._places}

    def keep_places(self, encounters: dict[EncounterKey, tuple[Place, ...]]) -> None:
        self._places.update(encounters)

    # --- producing -------------------------------------------------------------------------------
    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        self.produced.append((topic, key, value))

    def produce_many(self, records: list[tuple[str, bytes, bytes]]) -> None:
        for record in records:
            self.produce(*record)

    # --- consuming -------------------------------------------------------------------------------
    def ingest(self, topic: str, value: bytes) -> None:
        """Apply one record (from any thread) and push the change to every SSE client subscribed
        before it (a later one has it in its state: ``subscribe_with_state``)."""
        metrics.FEED_MESSAGES.labels(topic).inc()
        with self._lock:
            message = self.model.apply(topic, value)
            if message is not None and self.caught_up:
                self._deliver(message, tuple(self._clients))

    def backfill_done(self) -> None:
        """The backfill is applied: from now on changes go live. A browser that connected meanwhile
        missed what the backfill changed, so its stream ends; EventSource reconnects and reloads the
        state (app.js, "open")."""
        self.caught_up = True
        self.model.live = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._end_streams)

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A client's queue of the changes from now on."""
        with self._lock:
            return self._add_client()

    def subscribe_with_state(self) -> tuple[asyncio.Queue[dict[str, Any] | None], dict[str, Any]]:
        """A client's queue and the ward's state at the same instant: each change is either in the
        state or in the queue, after it. A page that loads the state and then subscribes (or the
        reverse) can lose a change in between, or lay an older state over it: a card missing until
        the patient's next record (tests/browser/test_dashboard.py met it)."""
        with self._lock:
            return self._add_client(), self._state()

    def _add_client(self) -> asyncio.Queue[dict[str, Any] | None]:
        """Under the lock."""
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize=2000)
        self._clients.add(q)
        metrics.SSE_CLIENTS.set(len(self._clients))
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any] | None]) -> None:
        with self._lock:
            self._clients.discard(q)
            metrics.SSE_CLIENTS.set(len(self._clients))

    def _deliver(self, message: dict[str, Any], clients: tuple[asyncio.Queue[dict[str, Any] | None], ...]) -> None:
        """Hand ``message`` to ``clients`` on the event loop (queues are the loop's); called under the
        lock, so in the order the changes were applied."""
        if clients and self._loop is not None:
            self._loop.call_soon_threadsafe(self._fanout, message, clients)

    def _fanout(self, message: dict[str, Any], clients: tuple[asyncio.Queue[dict[str, Any] | None], ...]) -> None:
        for q in clients:
            if q in self._clients:  # not gone meanwhile
                self._offer(q, message)

    def _offer(self, q: asyncio.Queue[dict[str, Any] | None], message: dict[str, Any] | None) -> None:
        try:
            q.put_nowait(message)
        except asyncio.QueueFull:
            # a client that cannot keep up is dropped (it reconnects and reloads the state)
            self.unsubscribe(q)
            while not q.empty():
                q.get_nowait()
            q.put_nowait(None)
