"""One way to connect: every Kafka and Redis client Vigil builds comes from this module.

Settings resolve the endpoints once (``kafka_endpoint``, ``redis_endpoint``): the bootstrap list,
the Redis URL, and the credentials. Explicit settings (``VIGIL_KAFKA__SASL_PASSWORD``,
``VIGIL_REDIS__PASSWORD``, ...) always win. For the embedded stack (no ``VIGIL_KAFKA__BOOTSTRAP``,
no ``VIGIL_REDIS__URL``) the missing credentials are the ones the stack generated in
``<home>/secrets`` (0600): the Redis password always (the embedded Redis requires one), the Kafka
SCRAM password and the local CA in secure mode. An external endpoint never receives the embedded
stack's secrets.

Every client then gets the same security options: the Faust app (``faust_broker``), kafka-python
producers, consumers and admin clients (``kafka_producer``, ``kafka_consumer``, ``kafka_admin``),
and sync or asyncio Redis (``redis_client``, ``redis_async_client``). TLS always checks the
broker's certificate and host name.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from vigil.infra.secrets import (
    KAFKA_CLIENT_USER,
    KAFKA_USER_PASSWORDS,
    REDIS_ADMIN_PASSWORD,
    REDIS_PASSWORD,
    REDIS_USER,
    read_secret,
)
from vigil.infra.settings import Settings

SCRAM_MECHANISM = "SCRAM-SHA-512"
LOOPBACK = "127.0.0.1"


def host_port(address: str, default_port: int) -> tuple[str, int] | None:
    """("host", port) of "host:port", "host" (the client's default port) or "[::1]:9092"; None when
    the port is not a number a client could use."""
    host, colon, port = address.rpartition(":") if not address.endswith("]") else ("", "", "")
    if not colon or (host.count(":") and not host.startswith("[")):  # no port, or a bare IPv6 address
        host, port = address, str(default_port)
    try:
        number = int(port)
    except ValueError:
        return None
    return (host.strip("[]") or "127.0.0.1", number) if 0 < number < 65536 else None


KAFKA_PORT = 9092  # a bootstrap entry without a port: the client's default
REDIS_PORT = 6379


def redis_address(url: str) -> tuple[str, int] | None:
    """("host", port) a redis:// or rediss:// URL connects to (never its password); None for another
    scheme or a port no client could use."""
    parsed = urlsplit(url)
    if parsed.scheme not in ("redis", "rediss"):
        return None
    return host_port(parsed.netloc.rpartition("@")[2], REDIS_PORT)


def redacted_url(url: str | None) -> str | None:
    """``url`` to show (a terminal, a log line, the audit trail): its user and password, if any, as
    ``***`` (``redis://:secret@host:6379/0`` -> ``redis://***@host:6379/0``)."""
    if not url:
        return url
    parts = urlsplit(url)
    netloc = f"***@{parts.netloc.rpartition('@')[2]}" if "@" in parts.netloc else parts.netloc
    # redis-py also reads ?password= (and ?username=), the way to give one for a unix socket
    query = "&".join(
        f"{name}=***" if name.lower() in ("password", "username") else f"{name}={value}" if sep else name
        for name, sep, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    head = f"{parts.scheme}://{netloc}" if "://" in url else f"{parts.scheme}:{netloc}"  # unix:///path keeps ///
    return head + parts.path + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")


@dataclass(frozen=True)
class KafkaEndpoint:
    bootstrap: str  # "host:port,host:port"
    embedded: bool
    security_protocol: str
    sasl_mechanism: str | None
    username: str | None
    password: SecretStr | None
    cafile: str | None
    replication_factor: int
    min_insync_replicas: int

    @property
    def addresses(self) -> list[str]:
        return [a.strip() for a in self.bootstrap.split(",") if a.strip()]

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL")


@dataclass(frozen=True)
class RedisEndpoint:
    url: str
    embedded: bool
    username: str | None
    password: SecretStr | None


def kafka_endpoint(settings: Settings) -> KafkaEndpoint:
    k = settings.kafka
    embedded = k.bootstrap is None
    bootstrap = k.bootstrap or ",".join(f"{LOOPBACK}:{port}" for port, _ in k.node_ports())
    username, password, cafile = k.sasl_username, k.sasl_password, k.ssl_cafile
    if embedded and k.security_protocol == "SASL_SSL":
        # the service's user, or a role's (vigil-ingest, vigil-subscriber): the password the stack
        # generated for it; another user brings its own
        username = username or KAFKA_CLIENT_USER
        secret = KAFKA_USER_PASSWORDS.get(username)
        password = password or (read_secret(settings.home, secret) if secret else None)
        cafile = cafile or str(settings.home / "tls" / "ca.pem")
    return KafkaEndpoint(
        bootstrap=bootstrap,
        embedded=embedded,
        security_protocol=k.security_protocol,
        sasl_mechanism=(k.sasl_mechanism or SCRAM_MECHANISM) if k.security_protocol.startswith("SASL") else None,
        username=username,
        password=password,
        cafile=cafile,
        replication_factor=k.replicas,
        min_insync_replicas=k.in_sync_replicas,
    )


def kafka_bootstrap(settings: Settings) -> str:
    return kafka_endpoint(settings).bootstrap


def redis_endpoint(settings: Settings, admin: bool = False) -> RedisEndpoint:
    """``admin``: the embedded Redis' ``default`` user (operators and tests), else the ACL user
    every Vigil client uses. For an external Redis both are the configured user."""
    r = settings.redis
    embedded = r.url is None
    url = r.url or f"redis://{LOOPBACK}:{r.embedded_port}/0"
    username, password = r.username, r.password
    if embedded and password is None:
        if admin:
            username, password = None, read_secret(settings.home, REDIS_ADMIN_PASSWORD)
        else:
            username, password = username or REDIS_USER, read_secret(settings.home, REDIS_PASSWORD)
    return RedisEndpoint(url=url, embedded=embedded, username=username, password=password)


# ------------------------------------------------------------------------------------------ Kafka


def kafka_options(settings: Settings) -> dict[str, Any]:
    """kafka-python keyword arguments: the bootstrap list and the security options."""
    e = kafka_endpoint(settings)
    options: dict[str, Any] = {"bootstrap_servers": e.addresses}
    if e.security_protocol == "PLAINTEXT":
        return options
    options["security_protocol"] = e.security_protocol
    if e.uses_tls:
        options["ssl_check_hostname"] = True
        if e.cafile:
            options["ssl_cafile"] = e.cafile
    if e.uses_sasl:
        options["sasl_mechanism"] = e.sasl_mechanism
        options["sasl_plain_username"] = e.username
        options["sasl_plain_password"] = e.password.get_secret_value() if e.password else None
    return options


def kafka_producer(settings: Settings, **options: Any) -> Any:
    """A kafka-python producer; ``acks=all`` unless the caller says otherwise."""
    from kafka import KafkaProducer

    return KafkaProducer(**{"acks": "all", **kafka_options(settings), **options})


def kafka_consumer(settings: Settings, **options: Any) -> Any:
    from kafka import KafkaConsumer

    return KafkaConsumer(**{**kafka_options(settings), **options})


def kafka_admin(settings: Settings, **options: Any) -> Any:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**{**kafka_options(settings), **options})


def consumer_from_now(settings: Settings, names: tuple[str, ...], **options: Any) -> Any:
    """A group-less consumer on every partition of ``names``, positioned at their current end:
    it sees what is published from now on (readback, bench, replay check, terminal feed)."""
    from kafka import TopicPartition

    consumer = kafka_consumer(settings, enable_auto_commit=False, group_id=None, **options)
    parts = [TopicPartition(t, p) for t in names for p in sorted(consumer.partitions_for_topic(t) or {0})]
    consumer.assign(parts)
    for tp, offset in consumer.end_offsets(parts).items():
        consumer.seek(tp, offset)
    return consumer


def faust_broker(settings: Settings) -> dict[str, Any]:
    """The ``broker`` and ``broker_credentials`` settings of a Faust app (aiokafka underneath)."""
    import faust

    e = kafka_endpoint(settings)
    credentials: Any = None
    if e.uses_tls:
        context = ssl.create_default_context(cafile=e.cafile)  # checks the certificate and host name
        if e.uses_sasl:
            credentials = faust.SASLCredentials(
                username=e.username,
                password=e.password.get_secret_value() if e.password else "",
                mechanism=e.sasl_mechanism,
                ssl_context=context,
            )
        else:
            credentials = faust.SSLCredentials(context)
    return {"broker": f"kafka://{e.bootstrap}", "broker_credentials": credentials}


# ------------------------------------------------------------------------------------------ Redis


def _redis_auth(settings: Settings, admin: bool, url: str | None = None) -> tuple[str, dict[str, Any]]:
    """The URL (``url``, else the configured one) and the options every Redis client gets."""
    e = redis_endpoint(settings, admin)
    target = url or e.url
    auth: dict[str, Any] = {"username": e.username, "password": e.password.get_secret_value() if e.password else None}
    if settings.redis.ssl_cafile and target.startswith("rediss://"):
        auth["ssl_ca_certs"] = settings.redis.ssl_cafile  # the certificate and its host name are checked
    return target, auth


def redis_client(settings: Settings, admin: bool = False, url: str | None = None, **options: Any) -> Any:
    """A synchronous Redis client (readiness probes, the dashboard, bench, tests, the CLI). ``url``
    points it at another address (``vigil alerts ls --redis``) with the same credentials."""
    import redis

    target, auth = _redis_auth(settings, admin, url)
    return redis.Redis.from_url(target, **auth, **options)


def redis_async_client(settings: Settings, **options: Any) -> Any:
    """An asyncio Redis client (the worker's patient store)."""
    import redis.asyncio as aioredis

    url, auth = _redis_auth(settings, admin=False)
    return aioredis.Redis.from_url(url, **auth, **options)
