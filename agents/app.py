"""The one Faust app. Topics carry raw bytes (JSON validated by pydantic, not by Faust)."""

from __future__ import annotations

from typing import Any

import faust

from vigil.agents.health import AGENTS
from vigil.infra.logging import get_logger
from vigil.infra.settings import Settings, get_settings
from vigil.schemas import topics


def kafka_bootstrap(settings: Settings) -> str:
    return settings.kafka.bootstrap or f"127.0.0.1:{settings.kafka.embedded_port}"


def _broker_credentials(settings: Settings) -> object | None:
    if settings.kafka.security_protocol != "SASL_SSL":
        return None
    import ssl

    from vigil.infra.tls import with_stack_credentials

    # a secure embedded stack keeps the generated password in <home>/secrets, not in the env
    k = with_stack_credentials(settings).kafka

    context = ssl.create_default_context(cafile=k.ssl_cafile)
    password = k.sasl_password.get_secret_value() if k.sasl_password else ""
    return faust.SASLCredentials(
        username=k.sasl_username,
        password=password,
        mechanism=k.sasl_mechanism or "SCRAM-SHA-512",
        ssl_context=context,
    )


def faust_config(settings: Settings) -> dict[str, Any]:
    """The Faust settings of every Vigil worker (and of the bench's bare-Faust baseline, so the
    comparison runs on identical consumer, producer and commit settings)."""
    return dict(
        broker=f"kafka://{kafka_bootstrap(settings)}",
        broker_credentials=_broker_credentials(settings),
        autodiscover=False,
        store="memory://",
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=settings.kafka.replication_factor,
        consumer_auto_offset_reset="earliest",
        # Offsets only ever cover events whose outputs and Redis writes are done (take_events acks
        # a batch after it is handled), so the commit cadence only bounds how much a restart replays.
        broker_commit_every=5000,
        broker_commit_interval=1.0,
        # first event within seconds of a worker start: short rebalance, quick heartbeats
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=20.0,
        producer_acks=-1,
        producer_linger_ms=2,
        stream_buffer_maxsize=8192,
        stream_wait_empty=False,
    )


log = get_logger(__name__)


class VigilApp(faust.App):
    """Faust's app, counting agent crashes for readiness (agents.health). Faust restarts a crashed
    agent and commits the offsets of the batch it held, so a crash loop must show on /readyz."""

    async def _on_agent_error(self, agent: Any, exc: BaseException) -> None:  # Faust's on_error hook
        AGENTS.crashed(agent.name)
        log.error("agent.crashed", agent=agent.name, error=type(exc).__name__)
        await super()._on_agent_error(agent, exc)


settings = get_settings()
app = VigilApp(settings.app_id, **faust_config(settings))


def raw_topic(name: str) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, partitions=settings.kafka.partitions)


events_raw_topic = raw_topic(topics.EVENTS_RAW)
events_topic = raw_topic(topics.EVENTS)
scores_topic = raw_topic(topics.SCORES)
alerts_topic = raw_topic(topics.ALERTS)
acks_topic = raw_topic(topics.ALERT_ACKS)
alerts_fhir_topic = raw_topic(topics.ALERTS_FHIR)
deadletter_topic = raw_topic(topics.DEADLETTER)
audit_topic = raw_topic(topics.AUDIT)
ingest_fhir_topic = raw_topic(topics.INGEST_FHIR)
ingest_hl7v2_topic = raw_topic(topics.INGEST_HL7V2)
treatment_requests_topic = raw_topic(topics.TREATMENT_REQUESTS)
treatment_scores_topic = raw_topic(topics.TREATMENT_SCORES)
