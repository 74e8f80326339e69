"""Embedded stack: real Apache Kafka 4.x (KRaft; one node, or ``--brokers 3``) and a real,
maintained Redis, on loopback, for the demo, the tests and a laptop. Production sets
``VIGIL_KAFKA__BOOTSTRAP`` and ``VIGIL_REDIS__URL`` and this package starts nothing.

Modules, one job each: ``processes`` (paths, pid files, ports), ``jars`` (Kafka's jars via Maven,
the java command), ``kafka`` (broker nodes), ``topics``, ``redis_server`` (binary policy,
passwords, ACL), ``tls`` (local CA and SCRAM material of ``--secure``), ``access`` (its role
users and Kafka ACLs). Clients connect through ``infra.connect``, never through this package.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from vigil.infra.connect import KAFKA_PORT, host_port, kafka_endpoint, redacted_url, redis_address, redis_endpoint
from vigil.infra.logging import get_logger
from vigil.infra.secrets import write_private
from vigil.infra.settings import Settings
from vigil.infra.stack.jars import kafka_version
from vigil.infra.stack.kafka import start_kafka, stop_kafka
from vigil.infra.stack.processes import (
    StackError,
    StackPaths,
    mark_stack_home,
    pid_alive,
    port_open,
    stack_lock,
    stop_pid,
)
from vigil.infra.stack.redis_server import redis_binary, start_redis
from vigil.infra.stack.topics import ensure_topics
from vigil.schemas.errors import UserError

__all__ = ["StackError", "StackInfo", "StackPaths", "as_started", "stack_down", "stack_status", "stack_up"]

log = get_logger(__name__)


@dataclass(frozen=True)
class StackInfo:
    """What ``stack_up`` started or found (no secrets: clients read those through infra.connect)."""

    bootstrap: str
    redis_url: str
    kafka_embedded: bool
    redis_embedded: bool
    started_s: float = 0.0
    security_protocol: str = "PLAINTEXT"
    brokers: int = 1
    replication_factor: int = 1

    def as_dict(self) -> dict[str, object]:
        return {
            "bootstrap": self.bootstrap,
            "redis_url": redacted_url(self.redis_url),
            "kafka_embedded": self.kafka_embedded,
            "redis_embedded": self.redis_embedded,
            "started_s": round(self.started_s, 2),
            "security_protocol": self.security_protocol,
            "brokers": self.brokers,
            "replication_factor": self.replication_factor,
        }


class StartedKafka(BaseModel):
    """What ``stack up`` started, kept in ``<home>/stack.json``: the Kafka settings its options
    change (``--brokers``, ``--secure``), which ``status`` then needs no option for."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    brokers: int
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"]


def as_started(settings: Settings) -> Settings:
    """``settings`` with the embedded Kafka as ``stack up`` last started it in this home (the
    environment's settings when nothing was recorded, the record is unreadable, or it does not fit
    the environment's other settings)."""
    return _as_started(settings)[0]


def _as_started(settings: Settings) -> tuple[Settings, str]:
    """``as_started`` and where its Kafka settings came from, in words for ``stack status``."""
    path = StackPaths(settings.home).started
    if settings.kafka.bootstrap is not None or not path.exists():
        return settings, "the environment"
    try:
        started = StartedKafka.model_validate_json(path.read_bytes())
    except (OSError, ValidationError):  # written by another version, or cut short: the environment says
        return settings, f"the environment ({path} is unreadable)"
    try:
        return settings.with_kafka(**started.model_dump()), str(path)
    except UserError as exc:
        # the environment changed since (a cluster's replication factor with the one node `up`
        # started, a Redis port on node 2 of the three): `status` failed instead of reporting
        log.warning("stack.started_record_unfit", record=str(path), reason=str(exc))
        return settings, f"the environment ({path} does not fit it: {exc})"


def stack_up(settings: Settings) -> StackInfo:
    """Start what is not configured externally; idempotent (an already running stack is reused)."""
    from vigil.schemas.topics import ALL_TOPICS

    t0 = time.monotonic()
    kafka, redis = kafka_endpoint(settings), redis_endpoint(settings)
    if redis.embedded or kafka.embedded:
        mark_stack_home(settings.home)  # what `stack down` (and its --wipe) then acts in
        with stack_lock(settings.home):  # another start or stop of this home waits, then finds it up
            if redis.embedded:
                start_redis(settings)
            if kafka.embedded:
                start_kafka(settings)
                ensure_topics(settings, ALL_TOPICS)
                started = StartedKafka(
                    brokers=settings.kafka.brokers, security_protocol=settings.kafka.security_protocol
                )
                write_private(StackPaths(settings.home).started, started.model_dump_json().encode())
    if not kafka.embedded:
        _require_answer([host_port(a, KAFKA_PORT) for a in kafka.addresses], "Kafka broker", "VIGIL_KAFKA__BOOTSTRAP")
    if not redis.embedded and urlsplit(redis.url).scheme != "unix":  # a socket file: the client says
        _require_answer([redis_address(redis.url)], "Redis", "VIGIL_REDIS__URL")
    info = StackInfo(
        kafka.bootstrap,
        redis.url,
        kafka.embedded,
        redis.embedded,
        time.monotonic() - t0,
        security_protocol=settings.kafka.security_protocol,
        brokers=settings.kafka.brokers if kafka.embedded else 0,
        replication_factor=kafka.replication_factor,
    )
    log.info("stack.up", **info.as_dict())
    return info


def stack_down(settings: Settings, wipe: bool = False) -> dict[str, bool]:
    """Stop every broker of the home (whatever ``up`` started: one node or a cluster) and Redis;
    ``wipe`` deletes their data too. Only in a folder the stack ran in (``StackPaths.is_stack_home``):
    a home that does not exist has nothing to stop or delete (a cleanup before anything ran
    succeeds), and an unmarked folder is neither created, nor made 0700, nor given a lock file."""
    paths = StackPaths(settings.home)
    stopped = {"kafka": False, "redis": False}
    if not paths.home.exists():
        return stopped
    if not paths.is_stack_home():
        if wipe:
            raise StackError(
                f"{paths.home} is not a Vigil home (no {paths.marker.name}): nothing deleted; check VIGIL_HOME "
                "(unset, the stack's home is ~/.cache/vigil)"
            )
        return stopped
    with stack_lock(settings.home):
        stopped = {"kafka": stop_kafka(settings), "redis": stop_pid(paths.redis_pid)}
        paths.started.unlink(missing_ok=True)
        if wipe:
            for folder in (paths.kafka / "data", *paths.kafka.glob("node-*"), paths.redis):
                shutil.rmtree(folder, ignore_errors=True)
            (paths.kafka / "cluster.id").unlink(missing_ok=True)
    return stopped


def _require_answer(addresses: list[tuple[str, int] | None], what: str, setting: str) -> None:
    """An outside cluster the command is about to use answers on one of ``addresses`` (a TCP
    connect): or one line now, not a client library retrying for half a minute."""
    usable = [a for a in addresses if a is not None]
    if any(port_open(host, port, 3.0) for host, port in usable):
        return
    shown = ", ".join(f"{h}:{p}" for h, p in usable) or "no usable host:port"
    raise StackError(
        f"no {what} answers at {shown}: start it, or set {setting} to where it runs (unset it for the embedded stack)"
    )


def stack_status(settings: Settings) -> dict[str, object]:
    from vigil.infra.kafka_features import read_metadata_version

    settings, settings_from = _as_started(settings)  # the brokers and protocol `stack up` started
    paths = StackPaths(settings.home)
    kafka, redis = kafka_endpoint(settings), redis_endpoint(settings)
    try:
        binary: object = redis_binary(settings).describe()
    except StackError as exc:
        binary = str(exc)
    listening = [a is not None and port_open(*a) for a in (host_port(x, KAFKA_PORT) for x in kafka.addresses)]
    return {
        "kafka": {
            "external": settings.kafka.bootstrap,
            "bootstrap": kafka.bootstrap,
            "brokers": settings.kafka.brokers if kafka.embedded else None,
            "security_protocol": settings.kafka.security_protocol,
            "pids": [pid_alive(p) for p in paths.node_pid_files() if p.exists()],
            "listening": listening,
            "replication_factor": kafka.replication_factor,
            "settings_from": settings_from,
            "version": kafka_version(paths) if kafka.embedded else None,  # of a cluster of others: its own tools
            "metadata_version": read_metadata_version(settings) if any(listening) else "not read: no broker listening",
        },
        "redis": {
            "external": redacted_url(settings.redis.url),  # never its password on a terminal
            "url": redacted_url(redis.url),
            "pid": pid_alive(paths.redis_pid),
            "listening": port_open("127.0.0.1", settings.redis.embedded_port),
            "binary": binary if redis.embedded else None,
        },
        "home": str(settings.home),
    }
