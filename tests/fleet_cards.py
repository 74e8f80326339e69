"""Fleet cards (``schemas.fleet.WorkerCard``) as workers announce them, for the unit tests of the
fleet's reading (infra/fleet.py), the worker's view (agents/fleet.py) and the dashboard's indicator."""

from __future__ import annotations

from datetime import UTC, datetime

from vigil.schemas.fleet import WorkerCard

NOW = datetime(2026, 12, 5, tzinfo=UTC)


def card(worker: str, version: str | None = "2.6.0", threshold: float | None = 0.0558, **kw: object) -> WorkerCard:
    """A scoring worker of group "vigil" serving ``version`` at ``threshold`` (None: rule scores)."""
    fields: dict[str, object] = {
        "worker": worker,
        "host": "h",
        "pid": 1,
        "app_id": "vigil",
        "scoring": True,
        "partitions": 2,
        "bundle_version": version,
        "bundle_sha256": None if version is None else f"sha-{version}",
        "alert_threshold": threshold,
        "vigil_version": "0.1.0",
        "started_at": NOW,
        "seen_at": NOW,
    }
    return WorkerCard.model_validate(fields | kw)
