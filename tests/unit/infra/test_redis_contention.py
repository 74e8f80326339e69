"""A state write whose keys other writers keep changing (a rebalance: two workers on one patient's
window for a moment) is contention, not an outage: Redis answered every round. It is retried under
its own log line, and the store stays healthy (ready, ``vigil_redis_up`` 1)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog
from redis.exceptions import WatchError

from vigil.infra import redis as store_module
from vigil.infra.redis import CAS_ATTEMPTS, RETRY_MAX_S, PatientState, PatientStore, WriteContended
from vigil.models.alerting import PatientAlertState
from vigil.models.window import PatientWindow


class _Pipeline:
    """A MULTI/EXEC whose EXEC aborts (a watched key written meanwhile) while the client says so."""

    def __init__(self, client: _Client) -> None:
        self.client = client

    async def __aenter__(self) -> _Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def watch(self, *keys: str) -> None:
        return None

    async def mget(self, keys: list[str]) -> list[None]:
        return [None for _ in keys]

    def multi(self) -> None:
        return None

    def __getattr__(self, command: str) -> Any:  # SET, SADD, SREM... queued in the MULTI
        return lambda *args, **kwargs: None

    async def execute(self) -> list[bool]:
        self.client.healthy_at_exec.append(self.client.store.health.ok)
        if self.client.lost:  # what redis-py raises when a watching pipeline's connection fails
            self.client.lost -= 1
            raise WatchError("A ConnectionError occurred while watching one or more keys")
        if self.client.aborts:
            self.client.aborts -= 1
            raise WatchError("Watched variable changed.") from None
        return [True]


class _Client:
    def __init__(self, aborts: int, lost: int = 0) -> None:
        self.aborts, self.lost = aborts, lost
        self.healthy_at_exec: list[bool] = []
        self.store: PatientStore

    def pipeline(self, transaction: bool = True) -> _Pipeline:
        return _Pipeline(self)


def test_a_contended_write_is_retried_without_calling_redis_down(monkeypatch: pytest.MonkeyPatch) -> None:
    client = _Client(aborts=CAS_ATTEMPTS + 1)  # every round of the first try, and one of the second
    store = PatientStore(client, ttl_s=60)
    client.store = store
    waits: list[float] = []

    async def no_wait(delay: float) -> None:
        waits.append(delay)

    monkeypatch.setattr(store_module.asyncio, "sleep", no_wait)
    state = PatientState(PatientWindow(), None, PatientAlertState())
    with structlog.testing.capture_logs() as logs:
        assert asyncio.run(store.save_states({"p1": state})) == []  # written on the second try
    assert [e["event"] for e in logs] == ["redis.write_contended"]
    assert logs[0]["log_level"] == "warning" and logs[0]["op"] == "set" and logs[0]["attempts"] == CAS_ATTEMPTS
    assert all(client.healthy_at_exec) and len(client.healthy_at_exec) == CAS_ATTEMPTS + 2
    assert store.health.ok and store.health.failures == 0
    assert waits == [0.1]


def test_the_wait_between_contended_tries_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    store = PatientStore(None, ttl_s=60)
    tries = [0]

    async def contended() -> str:
        tries[0] += 1
        if tries[0] <= 8:
            raise WriteContended("patient windows kept changing during the write")
        return "written"

    waits: list[float] = []

    async def no_wait(delay: float) -> None:
        waits.append(delay)

    monkeypatch.setattr(store_module.asyncio, "sleep", no_wait)
    with structlog.testing.capture_logs() as logs:
        assert asyncio.run(store._until_ok("set", contended)) == "written"
    assert waits == [0.1, 0.2, 0.4, 0.8, 1.6, RETRY_MAX_S, RETRY_MAX_S, RETRY_MAX_S]
    assert {e["event"] for e in logs} == {"redis.write_contended"}  # no redis.unavailable, no redis.recovered
    assert store.health.ok and store.health.failures == 0


def test_a_connection_lost_while_watching_is_an_outage_not_contention(monkeypatch: pytest.MonkeyPatch) -> None:
    """redis-py reports a watching pipeline's failed connection as a WatchError: read as contention,
    a Redis that dropped every connection left the store healthy (vigil_redis_up 1, no outage alert)."""
    client = _Client(aborts=0, lost=2)
    store = PatientStore(client, ttl_s=60)
    client.store = store

    async def no_wait(delay: float) -> None:
        return None

    monkeypatch.setattr(store_module.asyncio, "sleep", no_wait)
    state = PatientState(PatientWindow(), None, PatientAlertState())
    with structlog.testing.capture_logs() as logs:
        assert asyncio.run(store.save_states({"p1": state})) == []  # written once Redis is back
    assert [e["event"] for e in logs] == ["redis.unavailable", "redis.unavailable", "redis.recovered"]
    assert client.healthy_at_exec == [True, False, False]  # not ready while it was away
    assert store.health.failures == 2
