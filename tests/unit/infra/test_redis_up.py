"""vigil_redis_up and vigil_worker_ready are computed on each scrape from a PING, the worker's own Redis
health and the rest of its readiness rule."""

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
    monkeypatch.setattr(health, "_once_per_scrape", lambda ping: ping)  # each read asks again
    health.export_readiness(Settings(), lambda: answers["store"])
    assert scraped() == 1.0  # Redis works: never 0, even before the first event
    answers["store"] = False  # the worker's writes are being retried
    assert scraped() == 0.0
    answers.update(store=True, ping=False)
    assert scraped() == 0.0


def test_worker_ready_is_the_readiness_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = {"ping": True, "store": True, "rest": True}
    monkeypatch.setattr(health, "redis_ping", lambda settings: lambda: answers["ping"])
    monkeypatch.setattr(health, "_once_per_scrape", lambda ping: ping)
    health.export_readiness(Settings(), lambda: answers["store"], lambda: answers["rest"])
    ready = lambda: REGISTRY.get_sample_value("vigil_worker_ready")  # noqa: E731
    assert ready() == 1.0
    answers["rest"] = False  # an agent crash-looping, a partition stalled, the loop blocked
    assert ready() == 0.0 and scraped() == 1.0  # Redis is not the cause
    answers.update(rest=True, ping=False)
    assert ready() == 0.0 and scraped() == 0.0


def test_one_ping_serves_a_scrape() -> None:
    calls: list[int] = []

    def ping() -> bool:
        calls.append(1)
        return True

    once = health._once_per_scrape(ping, max_age_s=60)
    assert once() and once() and len(calls) == 1
    assert health._once_per_scrape(ping, max_age_s=0)() and len(calls) == 2


def test_other_processes_leave_the_workers_gauges_out() -> None:
    """The dashboard's and the MLLP listener's /metrics: a worker's gauges would read 0 there (Redis
    down, not ready) and page for it (deploy/prometheus)."""
    from prometheus_client import generate_latest

    from vigil.infra.metrics import WORKER_ONLY, registry_outside_worker

    served = generate_latest(registry_outside_worker()).decode()
    names = {line.split()[2] for line in served.splitlines() if line.startswith("# TYPE")}
    assert names and not names & WORKER_ONLY
    assert "vigil_dead_letters_total" in served and "python_info" in served  # the rest, as before
    assert {
        line.split()[2] for line in generate_latest().decode().splitlines() if line.startswith("# TYPE")
    } >= WORKER_ONLY
