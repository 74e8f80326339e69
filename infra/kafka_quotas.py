"""How fast each outside role may use the brokers (Kafka client quotas): an EHR interface stuck in a
resend loop, or a monitoring system re-reading a week of scores in a tight loop, is slowed down by
the brokers before it delays every other patient's events.

- ingest (``User:vigil-ingest``): at most ``producer_byte_rate`` bytes per second per broker, for each
  of its client ids on its own (Kafka's ``/users/<user>/clients/<default>``): a runaway integration
  slows only itself, so each integration and monitor gateway needs its own ``client.id``.
- subscriber (``User:vigil-subscriber``): at most ``consumer_byte_rate`` per client id per broker.

The brokers throttle, they do not refuse: a client over its quota gets its answers late (the
producer's ``throttle-time``), nothing is lost. The service (``User:vigil``: the workers, ``vigil
serve``, ``vigil mllp``) has no quota: its pace is the patients'. The quotas are a pure function of
the principals and the rates (``role_quotas``); ``apply_quotas`` writes them with AlterClientQuotas,
``read_quotas`` reads them back with DescribeClientQuotas (the embedded secure stack, or ``vigil
stack quotas --apply``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

from vigil.infra.kafka_access import Principals

# 1 MiB/s per broker: ~70 times a 1,000-bed hospital's observations (~30 events/s of ~500 B), and a
# day's backlog of them (~1.3 GB) drains in about 20 minutes per broker
INGEST_BYTES_PER_S: Final = 1 << 20
# 4 MiB/s per broker: a subscriber catching up on a day of scores does it in minutes
SUBSCRIBER_BYTES_PER_S: Final = 4 << 20
PRODUCE: Final = "producer_byte_rate"
FETCH: Final = "consumer_byte_rate"


@dataclass(frozen=True)
class Quota:
    """One client quota: ``key`` at ``value`` for the clients of ``principal`` (a ``User:`` principal),
    each client id on its own (Kafka's default client id under that user)."""

    role: str
    principal: str
    key: str
    value: float

    @property
    def user(self) -> str:
        return user_of(self.principal)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"user": self.user, "client_id": "<each>"}


def user_of(principal: str) -> str:
    """``User:vigil-ingest`` -> ``vigil-ingest``: Kafka keeps quotas by user name (a SCRAM user or a
    certificate's DN); another principal type has none."""
    kind, _, name = principal.partition(":")
    if kind != "User" or not name:
        raise ValueError(f"{principal}: client quotas are kept for User principals (User:NAME)")
    return name


def role_quotas(
    p: Principals, ingest_bytes_per_s: int = INGEST_BYTES_PER_S, subscriber_bytes_per_s: int = SUBSCRIBER_BYTES_PER_S
) -> list[Quota]:
    """The quotas of the outside roles (module docstring)."""
    if ingest_bytes_per_s <= 0 or subscriber_bytes_per_s <= 0:
        raise ValueError("a quota is a number of bytes per second above 0")
    for principal in (p.ingest, p.subscriber):
        user_of(principal)  # raises for a principal that can have no quota
    return [
        Quota("ingest", p.ingest, PRODUCE, float(ingest_bytes_per_s)),
        Quota("subscriber", p.subscriber, FETCH, float(subscriber_bytes_per_s)),
    ]


def _send(admin: Any, request: Any) -> Any:
    """One request through a kafka-python admin client's connection manager: kafka-python 3 carries
    the client-quota messages but no admin method for them."""
    return admin._manager.run(admin._manager.send, request)


def apply_quotas(admin: Any, quotas: list[Quota]) -> list[tuple[Quota, str]]:
    """Write ``quotas`` (idempotent: a quota set again keeps its value). Returns the refused ones,
    each with the error the cluster named (e.g. ``ClusterAuthorizationFailedError``)."""
    from kafka.errors import for_code
    from kafka.protocol.admin import AlterClientQuotasRequest

    entry = AlterClientQuotasRequest.EntryData
    entries = [
        entry(
            entity=[
                entry.EntityData(entity_type="user", entity_name=q.user),
                entry.EntityData(entity_type="client-id", entity_name=None),  # each client id on its own
            ],
            ops=[entry.OpData(key=q.key, value=q.value, remove=False)],
        )
        for q in quotas
    ]
    answer = _send(admin, AlterClientQuotasRequest(entries=entries, validate_only=False))
    refused = {}
    for result in answer.entries:
        if result.error_code:
            user = next(e.entity_name for e in result.entity if e.entity_type == "user")
            refused[user] = for_code(result.error_code).__name__
    return [(q, refused[q.user]) for q in quotas if q.user in refused]


def read_quotas(admin: Any, users: list[str]) -> dict[str, dict[str, float]]:
    """Each user's quotas for each of its client ids (``/users/<user>/clients/<default>``), by key:
    what the brokers enforce on a client id without a quota of its own."""
    from kafka.errors import for_code
    from kafka.protocol.admin import DescribeClientQuotasRequest

    component = DescribeClientQuotasRequest.ComponentData
    found: dict[str, dict[str, float]] = {u: {} for u in users}
    for user in users:
        request = DescribeClientQuotasRequest(
            components=[
                component(entity_type="user", match_type=0, match=user),
                component(entity_type="client-id", match_type=1, match=None),  # the default client id
            ],
            strict=True,
        )
        answer = _send(admin, request)
        if answer.error_code:
            raise for_code(answer.error_code)(answer.error_message)
        for entry in answer.entries:
            found[user].update({v.key: v.value for v in entry.values})
    return found
