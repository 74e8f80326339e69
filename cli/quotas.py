"""``vigil stack quotas``: how fast EHR integrations may produce and monitoring systems may fetch
(Kafka client quotas), listed, or written to a cluster and read back."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vigil.cli.acls import principal_option
from vigil.cli.jsonout import emit_json
from vigil.infra.kafka_access import Principals
from vigil.infra.kafka_quotas import INGEST_BYTES_PER_S, PRODUCE, SUBSCRIBER_BYTES_PER_S, Quota, role_quotas
from vigil.infra.settings import Settings, get_settings
from vigil.schemas.errors import UserError

console = Console(stderr=False)
_DEFAULT = Principals()


def quotas(
    apply: bool = typer.Option(
        False,
        "--apply",
        help="write them to the configured cluster and read them back, as the principal you connect as "
        "(it needs ALTER_CONFIGS on the cluster)",
    ),
    ingest: Annotated[str, principal_option("EHR integrations")] = _DEFAULT.ingest,
    subscriber: Annotated[str, principal_option("monitoring systems")] = _DEFAULT.subscriber,
    ingest_bytes_per_s: int = typer.Option(
        INGEST_BYTES_PER_S, min=1, help="bytes per second each EHR integration (client id) may produce, per broker"
    ),
    subscriber_bytes_per_s: int = typer.Option(
        SUBSCRIBER_BYTES_PER_S, min=1, help="bytes per second each monitoring system (client id) may fetch, per broker"
    ),
    json_out: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """The client quotas of the outside roles: each EHR integration's client id may produce, and each
    monitoring system's may fetch, so many bytes per second per broker; the brokers slow a client
    over its quota down (nothing is refused or lost), so a runaway sender cannot delay the other
    patients' events. The service has none. Lists them; --apply writes them and reads them back.
    The embedded secure stack writes its own (`vigil stack up --secure`)."""
    settings = get_settings()
    try:
        who = Principals(ingest=ingest, subscriber=subscriber)
        wanted = role_quotas(who, ingest_bytes_per_s, subscriber_bytes_per_s)
    except ValueError as exc:
        raise UserError(f"{exc}: name the role's user, e.g. --ingest User:vigil-ingest") from exc
    _print(wanted)
    summary: dict[str, object] = {"quotas": [q.as_dict() for q in wanted], "applied": False}
    if apply:
        bootstrap = _apply(settings, wanted)
        summary.update(applied=True, bootstrap=bootstrap)
        console.print(f"{len(wanted)} quotas written to the cluster at {bootstrap} and read back")
    if json_out:
        emit_json(summary)


def _apply(settings: Settings, wanted: list[Quota]) -> str:
    from kafka.errors import KafkaError

    from vigil.cli.preflight import require_broker
    from vigil.infra.connect import kafka_admin
    from vigil.infra.kafka_quotas import apply_quotas, read_quotas

    bootstrap = require_broker(settings)
    admin = kafka_admin(settings, client_id="vigil-quotas")
    try:
        refused = apply_quotas(admin, wanted)
        if refused:
            quota, why = refused[0]
            raise UserError(
                f"the cluster refused {len(refused)} of {len(wanted)} quotas (first: {quota.key} of "
                f"{quota.principal}: {why}): connect as a principal allowed to alter the cluster's "
                "configs, or give your cluster's administrator the list (`vigil stack quotas --json`)"
            )
        kept = read_quotas(admin, [q.user for q in wanted])
    except KafkaError as exc:
        raise UserError(f"the cluster at {bootstrap} refused the quotas ({type(exc).__name__}): see its log") from exc
    finally:
        admin.close()
    differ = [q for q in wanted if kept[q.user].get(q.key) != q.value]
    if differ:
        q = differ[0]
        raise UserError(
            f"the cluster reads back {q.key} of {q.principal} as {kept[q.user].get(q.key)}, not {q.value:.0f}: "
            "another administrator may be writing quotas; run this again"
        )
    return bootstrap


def _print(wanted: list[Quota]) -> None:
    table = Table()
    for column in ("role", "principal", "client ids", "quota"):
        table.add_column(column, overflow="fold")
    for q in wanted:
        what = "produce" if q.key == PRODUCE else "fetch"
        table.add_row(q.role, q.principal, "each on its own", f"{what} {q.value / (1 << 20):g} MiB/s per broker")
    console.print(table)
