"""Configuration-change audit: every worker start publishes its effective configuration (secrets
masked), who started it (OS user, host, pid) and when, to ``vigil.audit``. Alert acknowledgements
are audited on the same topic by the alert agent. A configuration change shows up as a new
``config_sha256`` in the worker-start records of the same component.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from datetime import UTC, datetime
from typing import Any

from vigil.infra.connect import kafka_producer, redacted_url
from vigil.infra.logging import get_logger
from vigil.infra.settings import Settings
from vigil.schemas import topics

log = get_logger(__name__)


def effective_config(settings: Settings) -> dict[str, Any]:
    """The settings as JSON; ``SecretStr`` fields dump as ``**********`` (never the secret), and a
    URL's password as ``***`` (``VIGIL_REDIS__URL`` may carry one: it reached the audit topic)."""
    config = settings.model_dump(mode="json")
    config["redis"]["url"] = redacted_url(config["redis"].get("url"))
    return config


def actor(at: datetime | None = None) -> dict[str, Any]:
    """Who did it, where and when, as every audit record says it: OS user, host, pid, time."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = str(os.getuid())
    return {"by": user, "host": socket.gethostname(), "pid": os.getpid(), "at": (at or datetime.now(UTC)).isoformat()}


def config_change_record(settings: Settings, action: str = "worker_start", component: str = "worker") -> dict[str, Any]:
    config = effective_config(settings)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    return {
        "type": "config_change",
        "action": action,
        "component": component,
        **actor(),
        "config_sha256": digest,
        "config": config,
    }


def publish_config_audit(
    settings: Settings, action: str = "worker_start", component: str = "worker", timeout_s: float = 15.0
) -> dict[str, Any] | None:
    """Publish one record to ``vigil.audit`` and wait for the broker (acks=all). Returns the record,
    or None when the broker could not be reached (logged; the worker still starts)."""
    from kafka.errors import KafkaError

    record = config_change_record(settings, action, component)
    try:
        producer = kafka_producer(settings, max_block_ms=int(timeout_s * 1000), client_id="vigil-audit")
        try:
            producer.send(topics.AUDIT, key=component.encode(), value=json.dumps(record).encode()).get(
                timeout=timeout_s
            )
        finally:
            producer.close(timeout=5)
    except KafkaError as exc:
        log.error("audit.config.unpublished", error=type(exc).__name__, config_sha256=record["config_sha256"])
        return None
    log.info("audit.config.published", action=action, config_sha256=record["config_sha256"])
    return record
