"""One root settings object. Environment: ``VIGIL_`` prefix, ``__`` for nesting
(``VIGIL_KAFKA__BOOTSTRAP=broker:9092``, ``VIGIL_REDIS__URL=redis://...``)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """Where the embedded stack keeps jars, data and logs (a user cache folder)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vigil"


class KafkaSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # None = start the embedded single-node KRaft broker on loopback
    bootstrap: str | None = None
    embedded_port: int = 19092
    embedded_controller_port: int = 19093
    partitions: int = 4
    replication_factor: int = 1
    security_protocol: str = "PLAINTEXT"  # or SASL_SSL
    sasl_mechanism: str | None = None  # SCRAM-SHA-512
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None


class RedisSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str | None = None  # None = start the embedded redis-server on loopback
    embedded_port: int = 16379
    window_hours: int = 48  # bounded per-patient window (matches models.features.WINDOW_HOURS)
    ttl_s: int = 7 * 24 * 3600  # state of a patient with no events for a week expires
    # ACL user and password (the secure embedded stack generates them; see docs/security.md)
    username: str | None = None
    password: SecretStr | None = None


class BatchSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_batch_size: int = 64
    # one scoring agent submits whole take() batches: waiting long for stragglers only adds latency
    max_queue_delay_ms: float = 2.0
    buckets: tuple[int, ...] = (1, 8, 32, 64, 256)
    # per-score explanations: "trees" = tree contributions on every score (cheap); the sequence
    # model's occlusion attribution is added when an alert opens or escalates
    explain: str = "trees"
    stream_take: int = 500  # events per Faust take() batch
    stream_within_s: float = 0.05


class AlertSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # NEWS2 clinical response bands (RCP 2017): 5-6 medium (urgent response), >= 7 high (emergency)
    open_band: str = "medium"
    # model: enter at the stored threshold, leave below threshold * exit_ratio (hysteresis)
    exit_ratio: float = 0.8
    suppress_s: float = 6 * 3600.0  # no new alert of the same trigger within this window
    escalate_after_s: float = 30 * 60.0  # open and unacknowledged this long -> escalate


class IngestSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # A raw event over this many bytes is dead-lettered ``too_large`` (a truncated copy, its size
    # and SHA-256). Kept well under the producer's max_request_size (1 MB) so that a whole copy of
    # anything accepted fits in a dead letter (schemas.deadletter.MAX_DEAD_LETTER_BYTES).
    max_event_bytes: int = Field(default=64 * 1024, ge=1024, le=512 * 1024)


class WebSettings(BaseModel):
    """The dashboard's sign-in and HTTP intake (agents/web; docs/dashboard.md, docs/security.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Encrypts and signs session cookies (Fernet key derived from it). Set the same value on every
    # web replica so they share sessions; unset = a random secret per process.
    session_secret: SecretStr | None = None
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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIL_", env_nested_delimiter="__", extra="forbid", frozen=True)

    home: Path = Field(default_factory=default_home)
    kafka: KafkaSettings = KafkaSettings()
    redis: RedisSettings = RedisSettings()
    batch: BatchSettings = BatchSettings()
    alerts: AlertSettings = AlertSettings()
    ingest: IngestSettings = IngestSettings()
    web: WebSettings = WebSettings()
    app_id: str = "vigil"
    # Also publish each validated, normalized event on vigil.events (for downstream consumers such
    # as a data lake). Nothing in Vigil reads it back; off by default it saves a produce per event.
    publish_events: bool = False
    # keyed hash for patient ids in logs (HMAC-SHA256); set a real secret in production
    log_hash_key: SecretStr = SecretStr("vigil-dev-only-change-me")
    log_format: str = "auto"  # auto | json | console
    log_level: str = "INFO"
    web_port: int = 8000
    metrics_port: int | None = None
    # worker readiness (infra/health.py): GET /readyz on this loopback port, and/or a JSON file
    health_port: int | None = None
    health_file: Path | None = None
    users_file: Path | None = None
    api_token: SecretStr | None = None  # bearer token for POST /fhir
    data_dir: Path = Path("../shared/data/physionet2019")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
