"""Readiness probes of the web process: can it reach the broker, does Redis answer a PING."""

from __future__ import annotations

import socket
import time
from typing import Any

from vigil.agents.web import metrics
from vigil.infra.connect import KAFKA_PORT, host_port, redis_client
from vigil.infra.settings import Settings


def broker_reachable(bootstrap: str, timeout_s: float = 1.0) -> bool:
    """A TCP connection to any bootstrap address succeeds (the consumer thread reports the rest).
    Addresses are read as Kafka's clients read them (``infra.connect.host_port``): ``kafka-1``
    without a port is port 9092 and ``[::1]:9092`` an IPv6 address; this check refused both,
    though ``stack up`` and every client accept them."""
    for address in bootstrap.split(","):
        where = host_port(address.strip(), KAFKA_PORT) if address.strip() else None  # "k:9092,": no 2nd
        if where is None:
            continue
        try:
            with socket.create_connection(where, timeout=timeout_s):
                return True
        except OSError:
            continue
    return False


class RedisPing:
    """A lazily built Redis client (``infra.connect``: URL and credentials) whose call answers
    whether Redis replies to PING (1 s timeouts)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: Any = None

    def __call__(self) -> bool:
        import redis

        if self._client is None:
            self._client = redis_client(self.settings, socket_timeout=1, socket_connect_timeout=1)
        t0 = time.perf_counter()
        try:
            self._client.ping()
        except (redis.RedisError, OSError):
            return False
        metrics.REDIS_PING.observe(time.perf_counter() - t0)
        return True
