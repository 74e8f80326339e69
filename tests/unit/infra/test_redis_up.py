"""vigil_redis_up is computed on each scrape from a PING and the worker's own Redis health."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from vigil.infra import health
from vigil.infra.settings import Settings


def scraped() -> float | None:
    return REGISTRY.get_sample_value("vigil_redis_up")


def test_redis_up_follows_ping_and_store_health(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"ping": True, "store": True}
    monkeypatch.setattr(health, "redis_ping", lambda settings: lambda: answers["ping"])
    health.export_redis_up(Settings(), lambda: answers["store"])
    assert scraped() == 1.0  # Redis works: never 0, even before the first event
    answers["store"] = False  # the worker's writes are being retried
    assert scraped() == 0.0
    answers.update(store=True, ping=False)
    assert scraped() == 0.0
