"""The worker announces itself every few seconds (``infra.fleet``: what it serves, in Redis) and
reads the other workers' cards back: ``vigil_fleet_workers`` and ``vigil_fleet_configurations`` of
its consumer group, and a ``fleet.mixed`` warning when the group's scoring workers serve more than
one bundle or alert threshold (``fleet.uniform`` when that ends). It leaves the fleet when it stops."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from vigil.agents.app import app
from vigil.agents.progress import PROGRESS
from vigil.agents.runtime import current_runtime, runtime
from vigil.infra import fleet, metrics
from vigil.infra.logging import get_logger
from vigil.models.bundle import SteppingBundle
from vigil.schemas import topics
from vigil.schemas.fleet import WorkerCard

log = get_logger(__name__)
SCORING_AGENTS = "vigil.agents.ingest."  # the module whose agents publish scores and alerts
WORKER = f"{socket.gethostname()}:{os.getpid()}"
STARTED_AT = datetime.now(UTC)
_state: dict[str, Any] = {"mixed": None, "reachable": True, "card": None}


@cache
def _manifest_sha256(folder: Path) -> str:
    return hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest()


def _vigil_version() -> str:
    try:
        return version("vigil")
    except PackageNotFoundError:
        return "unknown"


def this_card(
    bundle: SteppingBundle | None, partitions: int, scoring: bool, app_id: str, stalled_partitions: int = 0
) -> WorkerCard:
    chosen = bundle.alert_threshold if bundle is not None else None
    return WorkerCard(
        worker=WORKER,
        host=socket.gethostname(),
        pid=os.getpid(),
        app_id=app_id,
        scoring=scoring,
        partitions=partitions,
        stalled_partitions=stalled_partitions,
        bundle_version=bundle.version if bundle is not None else None,
        bundle_sha256=_manifest_sha256(bundle.artifacts_dir) if bundle is not None else None,
        state_tag=f"{bundle.state_tag:08x}" if bundle is not None else None,
        alert_threshold=round(chosen.threshold, 6) if chosen is not None else None,
        threshold_rule=chosen.rule if chosen is not None else None,
        vigil_version=_vigil_version(),
        started_at=STARTED_AT,
        seen_at=datetime.now(UTC),
    )


def observe_fleet(cards: list[WorkerCard], app_id: str) -> None:
    """Gauges of this worker's consumer group, and a log line when its mix of configurations changes."""
    group = [c for c in cards if c.app_id == app_id]
    serving = fleet.serving(group)
    metrics.FLEET_WORKERS.set(len(group))
    metrics.FLEET_CONFIGURATIONS.set(len(serving))
    configurations = sorted(((s.bundle_version, s.bundle_sha256, s.alert_threshold) for s in serving), key=repr)
    mixed = tuple(configurations) if len(serving) > 1 else None  # as a set: the cards' order is Redis's
    if mixed == _state["mixed"]:
        return
    _state["mixed"] = mixed
    if mixed:
        log.warning(
            "fleet.mixed",
            app_id=app_id,
            serving=[
                {
                    "bundle": s.bundle_version,
                    "sha256": (s.bundle_sha256 or "")[:12],
                    "threshold": s.alert_threshold,
                    "workers": len(s.workers),
                }
                for s in serving
            ],
        )
    else:
        log.info("fleet.uniform", app_id=app_id, workers=len(group))


@app.timer(interval=fleet.ANNOUNCE_EVERY_S, name="fleet.announce")
async def announce_worker() -> None:
    await _announce()


@app.task(name="fleet.announce")
async def announce_at_start() -> None:
    """Announced as soon as the worker runs (a timer's first call comes one interval later): the
    dashboard's "No worker is scoring" would otherwise stand for seconds while this worker scores."""
    await _announce()


async def _announce() -> None:
    rt = runtime()
    scoring = any(name.startswith(SCORING_AGENTS) for name in app.agents)
    held = sum(tp.topic == topics.EVENTS_RAW for tp in app.consumer.assignment())  # the scoring input
    card = this_card(rt.bundle, held, scoring, app.conf.id, PROGRESS.stalled_partitions)
    _state["card"] = card  # for the loop watch's thread (blocked_announcer)
    try:
        await fleet.announce(rt.store.client, card)
        cards = await fleet.read_fleet_async(rt.store.client)
    except (RedisError, OSError) as exc:  # Redis away: the scoring path retries and reports it
        if _state["reachable"]:
            log.warning("fleet.unavailable", error=type(exc).__name__)
        _state["reachable"] = False
        return
    _state["reachable"] = True
    observe_fleet(cards, app.conf.id)


def blocked_card(card: WorkerCard, now: datetime) -> WorkerCard:
    """The worker's card while its event loop is blocked (agents/loop.py): it reads none of the
    partitions it holds, so each counts as stalled (the dashboard's header, `vigil workers`). A worker
    of another group (treatment, a split intake) counts one at least: ``partitions`` counts the scoring
    input only, of which it holds none, and it reads no score to treat, no FHIR or HL7v2 input (the
    dashboard's warning, by group). A scoring worker holding none of the scoring input is a spare (every
    topic has as many partitions: it holds none of the others either), and counting it one raised the
    clinicians' "scores are not being updated" for it."""
    least = 0 if card.scoring else 1
    return card.model_copy(
        update={"stalled_partitions": max(card.stalled_partitions, card.partitions, least), "seen_at": now}
    )


def with_partitions_now(card: WorkerCard) -> WorkerCard:
    """``card`` with the scoring input's partitions the consumer holds now: the last card may be up to
    ``ANNOUNCE_EVERY_S`` old, written before an assignment (a spare that took a stalled worker's
    partitions and blocked on the same batch read as holding none: no stall shown). Read from the
    watching thread (a set the consumer replaces whole); as announced when it cannot be read."""
    try:
        held = sum(tp.topic == topics.EVENTS_RAW for tp in app.consumer.assignment())
    except Exception:  # noqa: BLE001 - the consumer not started, or stopping: the last card stands
        return card
    return card.model_copy(update={"partitions": held})


def blocked_announcer(settings: Any) -> Callable[[], None]:
    """For the loop watch's thread: announce this worker's last card as blocked, at most every
    ``ANNOUNCE_EVERY_S``, through a synchronous client of its own (the worker's asyncio client
    belongs to the blocked loop). Redis away: the card expires, which says as much."""
    from vigil.infra.connect import redis_client

    held: dict[str, Any] = {"client": None, "at": 0.0}

    def announce() -> None:
        card = _state.get("card")
        if card is None or time.monotonic() - held["at"] < fleet.ANNOUNCE_EVERY_S:
            return
        held["at"] = time.monotonic()
        card = with_partitions_now(card)
        try:
            if held["client"] is None:
                held["client"] = redis_client(settings, socket_timeout=2, socket_connect_timeout=2)
            fleet.announce_sync(held["client"], blocked_card(card, datetime.now(UTC)))
        except (RedisError, OSError) as exc:
            log.warning("fleet.unavailable", error=type(exc).__name__)

    return announce


@app.on_before_shutdown.connect
async def leave_fleet(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
    """Gone at once, not after ``TTL_S``: a stop-then-start rollout reads uniform as soon as it can."""
    rt = current_runtime()
    if rt is None:  # never announced
        return
    with contextlib.suppress(RedisError, OSError):  # else the card expires on its own
        await fleet.leave(rt.store.client, WORKER)
