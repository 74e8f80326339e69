"""A Redis that answers but refuses Vigil's command (its ACL, a password) is told apart from one that is
away: the worker's log says what to do, and it goes on retrying as for an outage (nothing is lost)."""

from __future__ import annotations

import asyncio

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError

from vigil.infra.redis import PatientStore


class _Client:
    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)

    async def mget(self, keys: list[str]) -> list[None]:
        if self.errors:
            raise self.errors.pop(0)
        return [None for _ in keys]


def test_a_refusal_says_what_to_do_and_an_outage_says_unavailable() -> None:
    refused = NoPermissionError("User vigil has no permissions to run the 'mget' command")
    store = PatientStore(_Client(refused, RedisConnectionError("Connection refused")), ttl_s=60)
    with structlog.testing.capture_logs() as logs:
        assert asyncio.run(store.load_blobs(["vigil:t:x"])) == [None]  # retried until it answered
    events = [(e["event"], e["log_level"]) for e in logs]
    assert events == [("redis.refused", "error"), ("redis.unavailable", "warning"), ("redis.recovered", "info")]
    assert "ACL" in logs[0]["hint"] and "no permissions" in logs[0]["detail"]
    assert store.health.ok and store.health.failures == 2
