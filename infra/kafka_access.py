"""Who may do what on Vigil's Kafka topics: three roles, each with the least it needs (Kafka ACLs).

- service (``User:vigil``): the workers, ``vigil serve``, ``vigil mllp`` and the CLI. Read, write,
  create and describe the topics named ``vigil*`` (and the app id's), add partitions to them; join and
  describe their consumer groups. Never delete a topic or change its configs (``vigil.audit`` is the
  record of who did what), nor delete a group.
- ingest (``User:vigil-ingest``): EHR integrations and bedside monitor gateways. Write the inbound
  topics only.
- subscriber (``User:vigil-subscriber``): monitoring and paging systems. Read alerts, scores, stays
  and treatment scores; write acknowledgements; consumer groups named ``vigil-subscriber*``.

An EHR interface's credentials cannot forge an alert or read a score; a pager gateway's cannot
inject an observation or read the dead letters (which hold the original bytes). The grants are a
pure function of the principals and the app id (``access_grants``); ``apply_grants`` writes them to
a cluster with an authorizer (the embedded secure stack, or ``vigil stack acls --apply``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from vigil.infra.secrets import KAFKA_CLIENT_USER, KAFKA_INGEST_USER, KAFKA_SUBSCRIBER_USER
from vigil.schemas import topics

ResourceKind = Literal["topic", "group", "cluster"]
PatternKind = Literal["literal", "prefixed"]

# what an EHR integration or a monitor gateway produces
INGEST_TOPICS = (topics.EVENTS_RAW, topics.INGEST_FHIR, topics.INGEST_HL7V2, topics.TREATMENT_REQUESTS)
# what a monitoring or paging system reads, and what it may answer
SUBSCRIBER_READS = (topics.ALERTS, topics.ALERTS_FHIR, topics.SCORES, topics.STAYS, topics.TREATMENT_SCORES)
SUBSCRIBER_WRITES = (topics.ALERT_ACKS,)
SERVICE_PREFIX = "vigil"  # every Vigil topic (vigil.*) and Faust's internal topics and groups (vigil-*)
CLUSTER_NAME = "kafka-cluster"  # the one name of Kafka's cluster resource
SERVICE_CLUSTER_OPERATIONS = ("CREATE", "DESCRIBE", "DESCRIBE_CONFIGS")
# what the service's clients send for its topics: produce and fetch, metadata and offsets, create
# (the workers' Faust internals, `vigil stack topics --apply`), `vigil stack topics`' read of
# min.insync.replicas (DESCRIBE_CONFIGS), and ALTER, which on a topic is only CreatePartitions: `vigil
# bench --workers` grows its input topics (bench.scaleout.grow_partitions). No DELETE (DeleteTopics,
# DeleteRecords) and no ALTER_CONFIGS: nothing Vigil runs deletes a topic or changes its retention,
# and a stolen service password must not erase vigil.audit
SERVICE_TOPIC_OPERATIONS = ("READ", "WRITE", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER")
# join, commit, fetch offsets (READ); describe and list (DESCRIBE, `vigil workers`); no DELETE: nothing
# Vigil runs deletes a consumer group
SERVICE_GROUP_OPERATIONS = ("READ", "DESCRIBE")
# what versions before 6 December 2026 wrote for the service: ALL on its prefixes, which let it delete
# topics and change their configs. Withdrawn where the grants are written (``withdraw_grants``)
FORMER_SERVICE_OPERATION = "ALL"


@dataclass(frozen=True)
class Principals:
    """The principal of each role, as Kafka names it (``User:<SCRAM user or certificate DN>``), and
    the prefix the subscriber's consumer group ids must begin with."""

    service: str = f"User:{KAFKA_CLIENT_USER}"
    ingest: str = f"User:{KAFKA_INGEST_USER}"
    subscriber: str = f"User:{KAFKA_SUBSCRIBER_USER}"
    subscriber_groups: str = KAFKA_SUBSCRIBER_USER


@dataclass(frozen=True)
class Grant:
    """One ALLOW binding: ``principal`` may ``operation`` the resource (from any host)."""

    role: str
    principal: str
    resource: ResourceKind
    name: str
    pattern: PatternKind
    operation: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def principal(name: str) -> str:
    """``vigil-ingest`` -> ``User:vigil-ingest``; a name that already has a type is kept. A wildcard
    (``*``, ``User:*``) is refused: Kafka reads it as every authenticated user, so the role would be
    everyone's."""
    name = name.strip()
    if not name or name.endswith(":"):
        raise ValueError("a principal needs a name, e.g. User:vigil-ingest")
    typed = name if ":" in name.split("=", 1)[0] else f"User:{name}"
    if typed.split(":", 1)[1].strip() in ("", "*"):
        raise ValueError(f"{name} names every user (a wildcard): give one login name, e.g. User:vigil-ingest")
    return typed


def service_prefixes(app_id: str) -> list[str]:
    """``vigil``, and the app id (Faust's group and internal topics) when ``vigil`` does not cover it."""
    return [SERVICE_PREFIX] + ([] if app_id.startswith(SERVICE_PREFIX) else [app_id])


def subscriber_groups_problem(prefix: str, app_id: str = SERVICE_PREFIX) -> str | None:
    """Why the subscribers' group prefix would reach the workers' consumer group (None when it cannot):
    it begins a service prefix (``vig`` covers every ``vigil*`` group) or the app id, which is the
    workers' group id. A pager joining that group takes partitions from the workers: unscored events."""
    covered = [name for name in (*service_prefixes(app_id), app_id) if name.startswith(prefix)]
    if not covered:
        return None
    return (
        f"the subscribers' group prefix {prefix!r} covers the workers' consumer group ({covered[0]}*): "
        f"give one that no Vigil group begins with, e.g. {KAFKA_SUBSCRIBER_USER} or pager-"
    )


def access_grants(p: Principals, app_id: str = SERVICE_PREFIX) -> list[Grant]:
    """Every binding the three roles need, and nothing more. Raises ValueError when the subscribers'
    group prefix would cover the workers' group (``subscriber_groups_problem``)."""
    problem = subscriber_groups_problem(p.subscriber_groups, app_id)
    if problem is not None:
        raise ValueError(problem)
    service: tuple[tuple[ResourceKind, tuple[str, ...]], ...] = (
        ("topic", SERVICE_TOPIC_OPERATIONS),
        ("group", SERVICE_GROUP_OPERATIONS),
    )
    grants = [
        Grant("service", p.service, kind, prefix, "prefixed", op)
        for prefix in service_prefixes(app_id)
        for kind, operations in service
        for op in operations
    ]
    grants += [Grant("service", p.service, "cluster", CLUSTER_NAME, "literal", op) for op in SERVICE_CLUSTER_OPERATIONS]
    grants += [_topic("ingest", p.ingest, t, op) for t in INGEST_TOPICS for op in ("WRITE", "DESCRIBE")]
    grants += [_topic("subscriber", p.subscriber, t, op) for t in SUBSCRIBER_READS for op in ("READ", "DESCRIBE")]
    grants += [_topic("subscriber", p.subscriber, t, op) for t in SUBSCRIBER_WRITES for op in ("WRITE", "DESCRIBE")]
    grants += [
        Grant("subscriber", p.subscriber, "group", p.subscriber_groups, "prefixed", op) for op in ("READ", "DESCRIBE")
    ]
    return grants


def _topic(role: str, who: str, name: str, operation: str) -> Grant:
    return Grant(role, who, "topic", name, "literal", operation)


def former_grants(p: Principals, app_id: str = SERVICE_PREFIX) -> list[Grant]:
    """The bindings earlier versions wrote and this one withdraws: ALL for the service on its
    prefixes. Kafka keeps a binding until it is deleted, so writing the new grants alone would leave
    a cluster set up before as open as it was."""
    return [
        Grant("service", p.service, kind, prefix, "prefixed", FORMER_SERVICE_OPERATION)
        for prefix in service_prefixes(app_id)
        for kind in ("topic", "group")
    ]


def to_acl(grant: Grant) -> Any:
    """The kafka-python ``ACL`` of a grant."""
    from kafka.admin import ACL, ACLOperation, ACLPermissionType, ACLResourcePatternType, ResourcePattern, ResourceType

    pattern = ResourcePattern(
        ResourceType[grant.resource.upper()], grant.name, ACLResourcePatternType[grant.pattern.upper()]
    )
    return ACL(grant.principal, "*", ACLOperation[grant.operation], ACLPermissionType.ALLOW, pattern)


@dataclass(frozen=True)
class Applied:
    """What the cluster answered: bindings written (or already there) and those it refused, with why."""

    written: int
    refused: list[tuple[Grant, str]]

    def refusal(self, no_authorizer: str, otherwise: str) -> str | None:
        """What was refused, for one line to a person (None when nothing was): the first binding
        and why, then ``no_authorizer`` when the cluster enforces no ACL at all, else ``otherwise``."""
        if not self.refused:
            return None
        grant, why = self.refused[0]
        hint = no_authorizer if why == "SecurityDisabledError" else otherwise
        total = self.written + len(self.refused)
        return (
            f"refused {len(self.refused)} of {total} ACLs (first: {grant.principal} {grant.operation} "
            f"on {grant.resource} {grant.name}: {why}): {hint}"
        )


def withdraw_grants(admin: Any, grants: list[Grant]) -> Applied:
    """Delete ``grants`` with a kafka-python admin client (each exactly: same principal, host,
    operation and pattern, never a wider filter). A binding that is not there is no error, so this is
    idempotent too. ``written``: the bindings deleted; ``refused``: those the cluster refused, with why."""
    from kafka.admin import ACLFilter

    filters = [
        ACLFilter(acl.principal, acl.host, acl.operation, acl.permission_type, acl.resource_pattern)
        for acl in (to_acl(g) for g in grants)
    ]
    answers = admin.delete_acls(filters) if filters else []
    # kafka-python answers, per filter in order: (filter, the bindings it deleted, an error class)
    deleted = sum(len(matched) for _, matched, _ in answers)
    errors = [getattr(error, "__name__", type(error).__name__) for _, _, error in answers]
    refused = [(g, why) for g, why in zip(grants, errors, strict=True) if why != "NoError"]
    return Applied(written=deleted, refused=refused)


def apply_grants(admin: Any, grants: list[Grant]) -> Applied:
    """Write ``grants`` with a kafka-python admin client. Kafka keeps one copy of a binding, so this
    is idempotent: run it again after an upgrade adds a topic."""
    acls = [to_acl(g) for g in grants]
    answer = admin.create_acls(acls)
    # kafka-python answers the ACL objects written and, in the same order, only the error classes
    # of the others
    written = {id(acl) for acl in answer.get("succeeded", [])}
    failed = [g for g, acl in zip(grants, acls, strict=True) if id(acl) not in written]
    errors = [getattr(e, "__name__", type(e).__name__) for e in answer.get("failed", [])]
    return Applied(written=len(written), refused=list(zip(failed, errors, strict=True)))
