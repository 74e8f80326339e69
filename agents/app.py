"""The one Faust app. Topics carry raw bytes (JSON validated by pydantic, not by Faust)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from typing import Any, cast

import faust

from vigil.agents.guard import AsyncFn, guard
from vigil.agents.health import AGENTS
from vigil.agents.transport import PrefetchWaitApp
from vigil.infra.connect import faust_broker, kafka_endpoint
from vigil.infra.logging import get_logger
from vigil.infra.settings import Settings, get_settings
from vigil.schemas import topics


def faust_datadir(app_id: str) -> Path:
    """Faust's data folder, which it creates at a worker's first start: in the temp dir, not (its
    default) ``<app id>-data`` in the working directory, which the image's unprivileged user cannot
    write (the worker stopped at start there with PermissionError). It stays empty: the tables are in
    memory and the patients' state in Redis, so nothing in it outlives the process or needs a volume."""
    return Path(tempfile.gettempdir()) / f"{app_id}-faust-{os.getuid()}"


PRODUCER_REQUEST_TIMEOUT_S = 30.0  # Kafka's own default request.timeout.ms


def faust_config(settings: Settings) -> dict[str, Any]:
    """The Faust settings of every Vigil worker (and of the bench's bare-Faust baseline, so the
    comparison runs on identical consumer, producer and commit settings)."""
    return dict(
        **faust_broker(settings),  # bootstrap list and credentials (infra/connect.py)
        autodiscover=False,
        datadir=faust_datadir(settings.app_id),
        store="memory://",
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        topic_partitions=settings.kafka.partitions,
        topic_replication_factor=kafka_endpoint(settings).replication_factor,
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
        # How long a record may wait for the broker's acknowledgement (aiokafka's request timeout, and
        # the age at which a batch it keeps retrying expires) before its future fails and the batch is
        # retried (batch.retry, not ready). Faust's 1200 s let a broker that answers fetches but takes
        # no produce request (too few replicas in sync, a partition without a leader) hold a batch in
        # its flush for 20 minutes, unexplained: the watchdog made every worker of the group leave.
        producer_request_timeout=PRODUCER_REQUEST_TIMEOUT_S,
        producer_linger_ms=2,
        stream_buffer_maxsize=8192,
        stream_wait_empty=False,
    )


log = get_logger(__name__)


class VigilApp(PrefetchWaitApp):
    """Faust's app (its prefetches' wait bounded: agents/transport.py), counting agent crashes for
    readiness (agents.health). Faust restarts a crashed
    agent and commits the offsets of the batch it held, so a crash loop must show on /readyz.

    Every timer, task and crontab it registers is guarded (``agents.guard``): Faust ends the whole
    worker when one raises. A timer's guard is around each tick, so the next tick still runs; its
    name (``vigil_timer_failures_total{timer}``, readiness) is the ``name`` given, else
    ``<module>.<function>``."""

    async def _on_agent_error(self, agent: Any, exc: BaseException) -> None:  # Faust's on_error hook
        AGENTS.crashed(agent.name)
        log.error("agent.crashed", agent=agent.name, error=type(exc).__name__)
        await super()._on_agent_error(agent, exc)

    def timer(  # type: ignore[override]
        self,
        interval: float,
        on_leader: bool = False,
        traced: bool = True,
        name: str | None = None,
        max_drift_correction: float = 0.1,
    ) -> Callable[[AsyncFn], AsyncFn]:
        register = super().timer(
            interval, on_leader=on_leader, traced=traced, name=name, max_drift_correction=max_drift_correction
        )
        return lambda fun: cast(AsyncFn, register(guard(fun, name)))

    def crontab(  # type: ignore[override]
        self,
        cron_format: str,
        *,
        timezone: tzinfo | None = None,
        on_leader: bool = False,
        traced: bool = True,
        name: str | None = None,
    ) -> Callable[[AsyncFn], AsyncFn]:
        register = super().crontab(cron_format, timezone=timezone, on_leader=on_leader, traced=traced)
        return lambda fun: cast(AsyncFn, register(guard(fun, name)))

    def task(  # type: ignore[override]
        self,
        fun: AsyncFn | None = None,
        *,
        on_leader: bool = False,
        traced: bool = True,
        name: str | None = None,
    ) -> Any:
        """Faust's ``task`` (a timer registers its loop through it: that loop, carrying its guarded
        function's mark, is not guarded again)."""

        def register(fun: AsyncFn) -> AsyncFn:
            return cast(AsyncFn, super(VigilApp, self).task(guard(fun, name), on_leader=on_leader, traced=traced))

        return register(fun) if fun is not None else register


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
drift_topic = raw_topic(topics.DRIFT)
stays_topic = raw_topic(topics.STAYS)
ingest_fhir_topic = raw_topic(topics.INGEST_FHIR)
ingest_hl7v2_topic = raw_topic(topics.INGEST_HL7V2)
treatment_requests_topic = raw_topic(topics.TREATMENT_REQUESTS)
treatment_scores_topic = raw_topic(topics.TREATMENT_SCORES)
