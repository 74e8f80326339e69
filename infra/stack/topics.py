"""Vigil's topics: created with the configured partitions, replication factor and
``min.insync.replicas`` (3 and 2 on a three-node cluster: with ``acks=all`` a write is acknowledged
by at least two brokers, so one broker may die without losing it), by ``vigil stack up`` on the
embedded broker(s) and by ``vigil stack topics --apply`` on a cluster Vigil does not start. A topic
that exists is never changed: more partitions would move patients to other partitions while their
earlier events wait in the old ones, and their order is what keeps one patient's state right."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from vigil.infra.connect import kafka_admin, kafka_endpoint
from vigil.infra.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    partitions: int
    replication_factor: int
    min_insync_replicas: int


def wanted_spec(settings: Settings) -> TopicSpec:
    """What every topic Vigil creates gets: the configured partitions, replication and min ISR."""
    e = kafka_endpoint(settings)
    return TopicSpec(settings.kafka.partitions, e.replication_factor, e.min_insync_replicas)


def missing_topics(settings: Settings, names: Iterable[str]) -> list[str]:
    """The topics of ``names`` the configured cluster does not have (one metadata request)."""
    admin = kafka_admin(settings, client_id="vigil-topics")
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    return [t for t in names if t not in existing]


def ensure_topics(settings: Settings, names: tuple[str, ...]) -> list[str]:
    """Create the topics of ``names`` that do not exist yet (``wanted_spec``); returns those created."""
    from kafka.errors import TopicAlreadyExistsError

    missing = missing_topics(settings, names)
    if not missing:
        return []
    spec = wanted_spec(settings)
    config = {
        "num_partitions": spec.partitions,
        "replication_factor": spec.replication_factor,
        "configs": {"min.insync.replicas": str(spec.min_insync_replicas)},
    }
    admin = kafka_admin(settings, client_id="vigil-topics")
    try:
        # another process may create one of them meanwhile: that is fine
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics({t: config for t in missing}, raise_errors=True, wait_for_metadata=True)
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
        # "all": the effective value, also where it is the broker's default (kafka-python returns only
        # values set on the topic by default, and a topic made by another tool has none)
        found = admin.describe_configs(
            [ConfigResource("TOPIC", t, ["min.insync.replicas"]) for t in names], config_filter="all"
        )
        configs: dict[str, dict[str, Any]] = found.get("topic", {})
        if all("min.insync.replicas" in configs.get(t, {}) for t in names) or time.monotonic() > deadline:
            return configs
        time.sleep(0.5)


def _int_or_none(config: dict[str, Any] | None) -> int | None:
    return int(config["value"]) if config and config.get("value") is not None else None


@dataclass(frozen=True)
class TopicReport:
    """One topic as the cluster has it (``partitions`` None: it does not exist) and what falls short
    of the spec. ``state``: present, missing, or created (by this run)."""

    name: str
    state: str
    partitions: int | None = None
    replication_factor: int | None = None  # the smallest replica count over its partitions
    min_insync_replicas: int | None = None
    findings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def topic_findings(spec: TopicSpec, partitions: int, replicas: int, min_insync: int | None) -> list[str]:
    """What an existing topic lacks against ``spec``, in words an operator acts on (none: it is fine)."""
    found = []
    if partitions < spec.partitions:
        found.append(
            f"{_count(partitions, 'partition')}, fewer than {spec.partitions}: "
            f"at most {_count(partitions, 'worker')} {'shares' if partitions == 1 else 'share'} it "
            "(adding partitions moves patients between them: stop the workers and let them finish first)"
        )
    if replicas < spec.replication_factor:
        found.append(
            f"{_count(replicas, 'replica')}, fewer than {spec.replication_factor}: "
            "losing a broker can lose accepted events"
        )
    if min_insync is not None and min_insync < spec.min_insync_replicas:
        found.append(
            f"min.insync.replicas {min_insync}, below {spec.min_insync_replicas}: "
            "a write may be acknowledged by fewer brokers"
        )
    return found


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def report_topics(settings: Settings, names: Iterable[str], created: Iterable[str] = ()) -> list[TopicReport]:
    """Each topic of ``names`` as the configured cluster has it, against ``wanted_spec``."""
    names, made = tuple(names), set(created)
    spec = wanted_spec(settings)
    absent = set(missing_topics(settings, names))
    present = tuple(n for n in names if n not in absent)
    described = describe_replication(settings, present) if present else {}
    reports = []
    for name in names:
        d = described.get(name)
        if d is None:
            reports.append(TopicReport(name, "missing"))
            continue
        parts, replicas, isr = int(d["partitions"] or 0), int(d["min_replicas"] or 0), d["min_insync_replicas"]
        reports.append(
            TopicReport(
                name,
                "created" if name in made else "present",
                parts,
                replicas,
                isr,
                topic_findings(spec, parts, replicas, isr),
            )
        )
    return reports
