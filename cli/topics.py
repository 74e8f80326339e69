"""``vigil stack topics``: Vigil's topics on the configured cluster, against the partitions,
replication and ``min.insync.replicas`` they should have; ``--apply`` creates the missing ones."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vigil.cli.jsonout import emit_json
from vigil.infra.settings import Settings, get_settings
from vigil.infra.stack.topics import TopicReport, TopicSpec, report_topics, wanted_spec
from vigil.schemas.errors import UserError

console = Console(stderr=False)


def topics(
    apply: bool = typer.Option(
        False, "--apply", help="create the missing topics (it needs CREATE on the cluster); existing ones are kept"
    ),
    partitions: int = typer.Option(None, min=1, help="partitions of a created topic (default VIGIL_KAFKA__PARTITIONS)"),
    replication_factor: int = typer.Option(
        None, min=1, help="replicas of a created topic (default VIGIL_KAFKA__REPLICATION_FACTOR: 3 on a cluster)"
    ),
    min_insync_replicas: int = typer.Option(
        None, min=1, help="min.insync.replicas of a created topic (default: 2 when replicated 3 times or more)"
    ),
    json_out: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """Vigil's topics on the configured cluster: which exist, with how many partitions, replicas and
    min.insync.replicas, and what falls short. --apply creates the missing ones. A topic that exists
    is never changed (more partitions would move patients while their earlier events wait)."""
    from vigil.cli.preflight import require_broker
    from vigil.schemas.topics import ALL_TOPICS

    settings = _with_spec(get_settings(), partitions, replication_factor, min_insync_replicas)
    spec = wanted_spec(settings)
    bootstrap = require_broker(settings)
    created = _create(settings, spec) if apply else []
    reports = report_topics(settings, ALL_TOPICS, created)
    _print(reports, spec)
    missing = [r.name for r in reports if r.state == "missing"]
    short = [r.name for r in reports if r.findings]
    if created:
        console.print(f"{len(created)} topics created on {bootstrap}")
    if missing:
        console.print(f"{len(missing)} of {len(reports)} topics missing: create them with `vigil stack topics --apply`")
    if short:
        console.print(f"{len(short)} existing topics fall short of the spec; Vigil does not change them (see above)")
    if json_out:
        emit_json(
            {
                "bootstrap": bootstrap,
                "spec": {
                    "partitions": spec.partitions,
                    "replication_factor": spec.replication_factor,
                    "min_insync_replicas": spec.min_insync_replicas,
                },
                "applied": apply,
                "created": created,
                "missing": missing,
                "short": short,
                "topics": [r.as_dict() for r in reports],
            }
        )


def _with_spec(settings: Settings, partitions: int | None, replicas: int | None, min_isr: int | None) -> Settings:
    asked = {"partitions": partitions, "replication_factor": replicas, "min_insync_replicas": min_isr}
    kafka = settings.kafka.model_copy(update={k: v for k, v in asked.items() if v is not None})
    spec_settings = settings.model_copy(update={"kafka": kafka})
    spec = wanted_spec(spec_settings)
    if spec.min_insync_replicas > spec.replication_factor:
        raise UserError(
            f"min.insync.replicas {spec.min_insync_replicas} is more than the {spec.replication_factor} replicas: "
            "no write could ever be acknowledged; lower --min-insync-replicas"
        )
    return spec_settings


def _create(settings: Settings, spec: TopicSpec) -> list[str]:
    from kafka.errors import (
        ClusterAuthorizationFailedError,
        InvalidReplicationFactorError,
        TopicAuthorizationFailedError,
    )

    from vigil.infra.stack.topics import ensure_topics
    from vigil.schemas.topics import ALL_TOPICS

    try:
        return ensure_topics(settings, ALL_TOPICS)
    except InvalidReplicationFactorError as exc:
        raise UserError(
            f"the cluster refused {spec.replication_factor} replicas per topic (it has fewer brokers): "
            "set --replication-factor to at most its number of brokers"
        ) from exc
    except (ClusterAuthorizationFailedError, TopicAuthorizationFailedError) as exc:
        raise UserError(
            "the cluster refused to create topics for this principal: connect as one allowed CREATE on the "
            "cluster (the service role has it: `vigil stack acls`), or give your administrator "
            "`vigil stack topics --json`"
        ) from exc


def _print(reports: list[TopicReport], spec: TopicSpec) -> None:
    table = Table(
        caption=f"spec: {spec.partitions} partitions, replication factor {spec.replication_factor}, "
        f"min.insync.replicas {spec.min_insync_replicas}"
    )
    for column in ("topic", "state", "partitions", "replicas", "min ISR", "falls short"):
        table.add_column(column, overflow="fold")
    for r in reports:
        cells = (r.partitions, r.replication_factor, r.min_insync_replicas)
        table.add_row(r.name, r.state, *("-" if c is None else str(c) for c in cells), "; ".join(r.findings))
    console.print(table)
