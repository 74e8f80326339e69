"""Vigil's topics on the embedded broker(s): created with the configured partitions, replication
factor and ``min.insync.replicas`` (3 and 2 on a three-node cluster: with ``acks=all`` a write
is acknowledged by at least two brokers, so one broker may die without losing it)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from vigil.infra.connect import kafka_admin, kafka_endpoint
from vigil.infra.settings import Settings


def topic_spec(settings: Settings) -> dict[str, Any]:
    e = kafka_endpoint(settings)
    return {
        "num_partitions": settings.kafka.partitions,
        "replication_factor": e.replication_factor,
        "configs": {"min.insync.replicas": str(e.min_insync_replicas)},
    }


def ensure_topics(settings: Settings, names: tuple[str, ...]) -> list[str]:
    """Create the topics of ``names`` that do not exist yet; returns those created."""
    from kafka.errors import TopicAlreadyExistsError

    admin = kafka_admin(settings, client_id="vigil-topics")
    try:
        missing = [t for t in names if t not in set(admin.list_topics())]
        if missing:
            spec = topic_spec(settings)
            # another process may create one of them meanwhile: that is fine
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics({t: spec for t in missing}, raise_errors=True, wait_for_metadata=True)
        return missing
    finally:
        admin.close()


def describe_replication(settings: Settings, names: tuple[str, ...]) -> dict[str, dict[str, int | None]]:
    """Per topic: partitions, the smallest replica and in-sync replica counts over its partitions,
    and its ``min.insync.replicas`` (what the three-broker test checks around a broker kill)."""
    admin = kafka_admin(settings, client_id="vigil-topics")
    try:
        configs = _min_insync_configs(admin, names)
        out: dict[str, dict[str, int | None]] = {}
        for topic in admin.describe_topics(list(names)):
            parts = topic["partitions"]
            out[topic["name"]] = {
                "partitions": len(parts),
                "min_replicas": min((len(p["replica_nodes"]) for p in parts), default=0),
                "min_isr": min((len(p["isr_nodes"]) for p in parts), default=0),
                "min_insync_replicas": _int_or_none(configs.get(topic["name"], {}).get("min.insync.replicas")),
            }
        return out
    finally:
        admin.close()


def _min_insync_configs(admin: Any, names: tuple[str, ...], wait_s: float = 20.0) -> dict[str, dict[str, Any]]:
    """Each topic's ``min.insync.replicas`` entry. Right after a cluster starts, a broker that has not
    applied a topic's metadata yet answers for it with an error and no configs, and kafka-python
    returns that as an empty entry: read again until every topic has one, or ``wait_s`` has passed."""
    from kafka.admin import ConfigResource

    deadline = time.monotonic() + wait_s
    while True:
        found = admin.describe_configs([ConfigResource("TOPIC", t, ["min.insync.replicas"]) for t in names])
        configs: dict[str, dict[str, Any]] = found.get("topic", {})
        if all("min.insync.replicas" in configs.get(t, {}) for t in names) or time.monotonic() > deadline:
            return configs
        time.sleep(0.5)


def _int_or_none(config: dict[str, Any] | None) -> int | None:
    return int(config["value"]) if config and config.get("value") is not None else None
