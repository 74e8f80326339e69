"""Who may do what on Vigil's Kafka topics: three roles, each with the least it needs (Kafka ACLs).

- service (``User:vigil``): the workers, ``vigil serve``, ``vigil mllp`` and the CLI. Everything on
  the topics and consumer groups named ``vigil*`` (and the app id's); create topics.
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
    """``vigil-ingest`` -> ``User:vigil-ingest``; a name that already has a type is kept."""
    name = name.strip()
    if not name or name.endswith(":"):
        raise ValueError("a principal needs a name, e.g. User:vigil-ingest")
    return name if ":" in name.split("=", 1)[0] else f"User:{name}"


def service_prefixes(app_id: str) -> list[str]:
    """``vigil``, and the app id (Faust's group and internal topics) when ``vigil`` does not cover it."""
    return [SERVICE_PREFIX] + ([] if app_id.startswith(SERVICE_PREFIX) else [app_id])


def access_grants(p: Principals, app_id: str = SERVICE_PREFIX) -> list[Grant]:
    """Every binding the three roles need, and nothing more."""
    grants = [
        Grant("service", p.service, kind, prefix, "prefixed", "ALL")
        for prefix in service_prefixes(app_id)
        for kind in ("topic", "group")
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
