"""``vigil stack acls``: the Kafka ACLs of Vigil's three roles, listed, or written to a cluster."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vigil.cli.jsonout import emit_json
from vigil.infra.kafka_access import (
    Grant,
    Principals,
    access_grants,
    former_grants,
    principal,
    subscriber_groups_problem,
)
from vigil.infra.settings import Settings, get_settings
from vigil.schemas.errors import UserError

console = Console(stderr=False)
_DEFAULT = Principals()


def _principal(value: str) -> str:
    try:
        return principal(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def principal_option(role: str) -> object:
    return typer.Option(callback=_principal, metavar="PRINCIPAL", help=f"principal of {role} (User:NAME)")


def acls(
    apply: bool = typer.Option(
        False,
        "--apply",
        help="write them to the configured cluster, as the principal you connect as (it needs ALTER on the cluster)",
    ),
    service: Annotated[str, principal_option("the service")] = _DEFAULT.service,
    ingest: Annotated[str, principal_option("EHR integrations")] = _DEFAULT.ingest,
    subscriber: Annotated[str, principal_option("monitoring systems")] = _DEFAULT.subscriber,
    subscriber_groups: str = typer.Option(
        _DEFAULT.subscriber_groups, help="the prefix the subscribers' consumer group ids begin with"
    ),
    json_out: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """The Kafka ACLs each role needs, and nothing more: service (workers, vigil serve, vigil mllp,
    the CLI), ingest (EHR integrations: write the inbound topics) and subscriber (monitoring systems:
    read alerts and scores, write acknowledgements). Lists them; --apply writes them to a cluster
    with an authorizer, and withdraws the service's ALL that versions before 6 December 2026 wrote.
    The embedded stack writes its own (`vigil stack up --secure`). A --subscriber-groups prefix that
    the workers' consumer group begins with is refused."""
    settings = get_settings()
    groups = subscriber_groups.strip() or _DEFAULT.subscriber_groups
    problem = subscriber_groups_problem(groups, settings.app_id)
    if problem is not None:
        raise UserError(f"--subscriber-groups: {problem}")
    who = Principals(service, ingest, subscriber, groups)
    grants = access_grants(who, settings.app_id)
    _print(grants)
    summary: dict[str, object] = {"grants": [g.as_dict() for g in grants], "applied": False}
    if apply:
        bootstrap, written, withdrawn = _apply(settings, grants, former_grants(who, settings.app_id))
        summary.update(applied=True, bootstrap=bootstrap, written=written, withdrawn=withdrawn)
        console.print(f"{len(grants)} ACLs written to the cluster at {bootstrap}")
    if json_out:
        emit_json(summary)


def _apply(settings: Settings, grants: list[Grant], former: list[Grant]) -> tuple[str, int, int]:
    """Write ``grants``, then delete ``former`` (the service keeps access in between): (bootstrap,
    bindings written, bindings deleted)."""
    from vigil.cli.preflight import require_broker
    from vigil.infra.connect import kafka_admin
    from vigil.infra.kafka_access import Applied, apply_grants, withdraw_grants

    bootstrap = require_broker(settings)
    admin = kafka_admin(settings, client_id="vigil-acls")
    withdrawn = Applied(0, [])
    try:
        applied = apply_grants(admin, grants)
        if not applied.refused:
            withdrawn = withdraw_grants(admin, former)
    finally:
        admin.close()
    for answer in (applied, withdrawn):
        refusal = answer.refusal(
            "the cluster has no authorizer (authorizer.class.name), so no ACL would be enforced: "
            "configure one (docs/security.md), or run `vigil stack up --secure` for the embedded stack",
            "connect as a principal allowed to alter ACLs, or give your cluster's administrator "
            "the list (`vigil stack acls --json`)",
        )
        if refusal is not None:
            raise UserError(f"the cluster {refusal}")
    return bootstrap, applied.written, withdrawn.written


def _print(grants: list[Grant]) -> None:
    """One row per role and resource, its operations together (a prefix ends in ``*``)."""
    rows: dict[tuple[str, str, str], list[str]] = {}
    for g in grants:
        name = f"{g.name}*" if g.pattern == "prefixed" else g.name
        rows.setdefault((g.role, g.principal, f"{g.resource} {name}"), []).append(g.operation)
    table = Table()
    for column in ("role", "principal", "resource", "operations"):
        table.add_column(column, overflow="fold")  # a name is never cut short
    for (role, who, resource), operations in rows.items():
        table.add_row(role, who, resource, ", ".join(operations))
    console.print(table)
