"""The live fleet: each worker announces what it serves in Redis (``vigil:worker:<host:pid>``, a
``schemas.fleet.WorkerCard`` that expires ``TTL_S`` after its last announcement, deleted when the
worker stops), so that ``vigil workers``, the dashboard and every worker can tell when workers of
one consumer group serve different bundles or alert thresholds: during a rollout, or by mistake.

A mixed group scores each patient by the bundle of whichever worker holds the partition the
patient's id falls in, so two patients alike are paged by different models (docs/operations.md,
"Changing the bundle"). The reading here is pure (``serving``); the Redis calls are one scan and
one MGET."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from vigil.infra.logging import get_logger
from vigil.schemas.fleet import WorkerCard

log = get_logger(__name__)

PREFIX = "vigil:worker:"
ANNOUNCE_EVERY_S = 5.0
TTL_S = 20  # four announcements missed: the worker is gone (killed, or cut off from Redis)


def card_key(worker: str) -> str:
    return PREFIX + worker


def parse_cards(blobs: Iterable[bytes | str | None]) -> list[WorkerCard]:
    """The cards read back; a card that does not parse (another version's) is skipped, logged."""
    cards = []
    for blob in blobs:
        if blob is None:  # expired between the scan and the read
            continue
        try:
            cards.append(WorkerCard.model_validate_json(blob))
        except ValidationError:
            log.warning("fleet.card_unreadable")
    return sorted(cards, key=lambda c: (c.app_id, c.worker))


def read_fleet(client: Any) -> list[WorkerCard]:
    """Every live worker's card, through a synchronous client (the CLI, the dashboard)."""
    keys = list(client.scan_iter(match=PREFIX + "*", count=500))
    return parse_cards(client.mget(keys) if keys else [])


async def read_fleet_async(client: Any) -> list[WorkerCard]:
    """The same through the worker's asyncio client."""
    keys = [k async for k in client.scan_iter(match=PREFIX + "*", count=500)]
    return parse_cards(await client.mget(keys) if keys else [])


async def announce(client: Any, card: WorkerCard, ttl_s: int = TTL_S) -> None:
    await client.set(card_key(card.worker), card.model_dump_json(), ex=ttl_s)


def announce_sync(client: Any, card: WorkerCard, ttl_s: int = TTL_S) -> None:
    """The same through a synchronous client: from a thread while the worker's event loop is blocked."""
    client.set(card_key(card.worker), card.model_dump_json(), ex=ttl_s)


async def leave(client: Any, worker: str) -> None:
    await client.delete(card_key(worker))


@dataclass(frozen=True)
class Serving:
    """One configuration live scoring workers of a consumer group serve, and which workers serve it."""

    app_id: str
    bundle_version: str | None
    bundle_sha256: str | None
    alert_threshold: float | None
    workers: tuple[str, ...]

    def summary(self) -> dict[str, object]:
        return {
            "app_id": self.app_id,
            "bundle": self.bundle_version,
            "bundle_sha256": self.bundle_sha256,
            "alert_threshold": self.alert_threshold,
            "workers": list(self.workers),
        }


def serving(cards: Sequence[WorkerCard]) -> list[Serving]:
    """The configurations scoring workers serve, per consumer group, most workers first. A group
    with more than one is mixed (``mixed_groups``)."""
    groups: dict[tuple[str, tuple[str | None, str | None, float | None]], list[str]] = {}
    for card in cards:
        if card.scoring:
            groups.setdefault((card.app_id, card.serves), []).append(card.worker)
    out = [Serving(app, *serves, tuple(sorted(workers))) for (app, serves), workers in groups.items()]
    return sorted(out, key=lambda s: (s.app_id, -len(s.workers), s.bundle_version or ""))


def mixed_groups(cards: Sequence[WorkerCard]) -> dict[str, list[Serving]]:
    """Consumer groups whose live scoring workers serve more than one configuration."""
    by_app: dict[str, list[Serving]] = {}
    for s in serving(cards):
        by_app.setdefault(s.app_id, []).append(s)
    return {app: group for app, group in by_app.items() if len(group) > 1}
