"""Checks before a long-running command starts: is the stack there, are its topics, is the port free.
Each failure is a ``UserError`` with what to do, so ``vigil worker`` without a stack (or without its
topics) says so once instead of retrying for half a minute, and ``vigil serve`` on a taken port fails
before announcing its URL."""

from __future__ import annotations

import errno
import socket
from typing import Literal

from vigil.infra.connect import kafka_bootstrap, redis_address, redis_endpoint
from vigil.infra.settings import Settings
from vigil.schemas.errors import UserError


def settings_for(settings: Settings, bootstrap: str | None) -> Settings:
    """The settings, with ``--bootstrap`` (when given) as the Kafka bootstrap list."""
    if bootstrap is None:
        return settings
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"bootstrap": bootstrap})})


def require_broker(settings: Settings) -> str:
    from vigil.agents.web.readiness import broker_reachable

    bootstrap = kafka_bootstrap(settings)
    if not broker_reachable(bootstrap, timeout_s=2.0):
        raise UserError(
            f"no Kafka broker answers at {bootstrap}: start the stack with `vigil stack up` "
            "(or point VIGIL_KAFKA__BOOTSTRAP at your cluster)"
        )
    return bootstrap


def require_topics(settings: Settings) -> None:
    """Every topic of Vigil's on the cluster, or one line naming the missing ones. A worker would
    otherwise make those it reads itself, with its own partition count and no ``min.insync.replicas``
    (and fail on a cluster of fewer brokers than the replication factor, in a Faust traceback)."""
    from vigil.infra.stack.topics import missing_topics
    from vigil.schemas.topics import ALL_TOPICS

    missing = missing_topics(settings, ALL_TOPICS)
    if missing:
        named = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise UserError(
            f"{len(missing)} of Vigil's {len(ALL_TOPICS)} topics are missing on {kafka_bootstrap(settings)} "
            f"({named}): create them with `vigil stack topics --apply`, then start this again"
        )


def require_redis(settings: Settings, given: str | None = None) -> str:
    """The Redis URL (``given``, as a ``--redis`` option, or the settings') when Redis answers there."""
    from vigil.infra.stack.processes import port_open

    url = given or redis_endpoint(settings).url
    if url.startswith("unix:"):
        return url  # a socket file: the client says if nothing is there
    address = redis_address(url)
    if address is None:
        where = "--redis" if given else "VIGIL_REDIS__URL"
        shown = url.split("@")[-1] if "@" in url else url  # never a password on the terminal
        raise UserError(f"{shown!r} is not a Redis URL: give {where} as redis://HOST:PORT/DB (rediss:// for TLS)")
    if not port_open(*address, timeout=2.0):
        raise UserError(
            f"no Redis answers at {address[0]}:{address[1]}: start the stack with `vigil stack up` "
            "(or set VIGIL_REDIS__URL)"
        )
    return url


# How the server that follows binds its host, which the check must copy: a check binding otherwise
# passes a port the server then fails on (after announcing its URL), or refuses one it would bind.
# "every_address": asyncio's ``loop.create_server`` (``vigil mllp``'s asyncio.start_server, and uvicorn.run
# as ``vigil serve`` and the demo call it: an app object, one worker, no reload; uvicorn's own
# ``Config.bind_socket``, one AF_INET socket for a host without ':', is used only with workers or
# reload): each address the host resolves to, SO_REUSEADDR, IPV6_V6ONLY on an IPv6 socket.
# "first_address": http.server's, as prometheus_client's ``start_http_server`` binds (the metrics
# port): the first address only, SO_REUSEADDR, an IPv6 socket left dual-stack (so "::" takes the
# port on IPv4 too).
Binds = Literal["every_address", "first_address"]


def require_free_port(
    host: str, port: int, host_from: str = "--host", port_from: str = "--port", binds: Binds = "every_address"
) -> None:
    """Refuse a port another process listens on, and a host this machine cannot listen on, in one
    line naming the option to change (``host_from``, ``port_from``). The host is bound as the server
    that follows binds it (``binds``, see ``Binds``), SO_REUSEADDR included: a port whose last
    connections linger in TIME_WAIT, as after a demo run a minute ago, is free to them, and a listener
    still refuses the bind. Only EADDRINUSE is a taken port: an IPv4 socket for "::1" once made every
    IPv6 host "already in use"."""
    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"{host_from} {host} cannot be used here: unknown host ({exc.strerror})") from exc
    addresses = list(dict.fromkeys(found))
    for family, kind, proto, _, address in addresses if binds == "every_address" else addresses[:1]:
        try:
            with socket.socket(family, kind, proto) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if binds == "every_address" and family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                s.bind(address)
        except OSError as exc:
            raise UserError(unusable_address(host, port, exc, host_from, port_from)) from exc


def unusable_address(host: str, port: int, exc: OSError, host_from: str, port_from: str) -> str:
    """Why a bind failed, and which option to change: only a taken port is "in use"; a host that is no
    address of this machine, or a port below 1024 without privileges, is said as such."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where} is already in use: choose another with {port_from}"
    if exc.errno == errno.EACCES:
        return f"{where}: ports below 1024 need privileges here: choose one of 1024 or above with {port_from}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host_from} {host} cannot be used here: it is not an address of this machine"
    return f"{host_from} {host} cannot be used here: {exc.strerror or exc}"
