"""Checks before a long-running command starts: is the stack there, is the port free. Each failure is
a ``UserError`` with what to do, so ``vigil worker`` without a stack says so once instead of retrying
for half a minute, and ``vigil serve`` on a taken port fails before announcing its URL."""

from __future__ import annotations

import socket

from vigil.infra.settings import Settings
from vigil.schemas.errors import UserError


def bootstrap_of(settings: Settings, override: str | None = None) -> str:
    return override or settings.kafka.bootstrap or f"127.0.0.1:{settings.kafka.embedded_port}"


def redis_url_of(settings: Settings) -> str:
    return settings.redis.url or f"redis://127.0.0.1:{settings.redis.embedded_port}/0"


def require_broker(settings: Settings, override: str | None = None) -> str:
    from vigil.agents.web.readiness import broker_reachable

    bootstrap = bootstrap_of(settings, override)
    if not broker_reachable(bootstrap, timeout_s=2.0):
        raise UserError(
            f"no Kafka broker answers at {bootstrap}: start the stack with `vigil stack up` "
            "(or point VIGIL_KAFKA__BOOTSTRAP at your cluster)"
        )
    return bootstrap


def require_redis(settings: Settings) -> str:
    from urllib.parse import urlparse

    url = redis_url_of(settings)
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=2.0):
            return url
    except OSError as exc:
        raise UserError(
            f"no Redis answers at {parsed.hostname}:{parsed.port}: start the stack with `vigil stack up` "
            "(or set VIGIL_REDIS__URL)"
        ) from exc


def require_free_port(host: str, port: int) -> None:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise UserError(f"{host}:{port} is already in use: choose another with --port") from exc
