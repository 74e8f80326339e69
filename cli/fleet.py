"""``vigil workers``: the live workers and what each serves (``infra.fleet``, announced in Redis),
so that a rollout can be watched and checked: ``--expect-bundle 2.7.0`` exits 1 until every live
scoring worker serves it, one file at one alert threshold (no group mixed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vigil.cli.jsonout import emit_json

console = Console()
JsonFlag = Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")]


def workers(
    expect_bundle: Annotated[
        str | None,
        typer.Option(help="exit 1 unless every live scoring worker serves this bundle version (a rollout's end)"),
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """The live workers (each announces itself in Redis every few seconds) with the bundle, alert
    threshold and partitions each serves; a consumer group whose scoring workers serve more than one
    bundle or threshold is marked mixed."""
    from vigil.cli.alert_state import redis_client
    from vigil.cli.preflight import require_redis
    from vigil.infra.fleet import TTL_S, mixed_groups, read_fleet, serving
    from vigil.infra.settings import get_settings

    settings = get_settings()
    require_redis(settings)
    cards = read_fleet(redis_client(settings))
    now = datetime.now(UTC)
    table = Table("worker", "group", "scores", "partitions", "bundle", "threshold", "up", "seen")
    for c in cards:
        table.add_row(
            c.worker,
            c.app_id,
            "yes" if c.scoring else "no",
            str(c.partitions) + (f" [red]({c.stalled_partitions} stalled)[/]" if c.stalled_partitions else ""),
            c.bundle_version or "none (rules)",
            "-" if c.alert_threshold is None else f"{c.alert_threshold:.4f} {c.threshold_rule}",
            _ago(now, c.started_at),
            _ago(now, c.seen_at),
        )
    if cards:
        console.print(table)
    served = serving(cards)
    mixed = mixed_groups(cards)
    for s in served:
        mark = "[red]MIXED[/] " if s.app_id in mixed else ""
        console.print(
            f"{mark}group {s.app_id}: {len(s.workers)} scoring worker(s) serve bundle {s.bundle_version} "
            f"({(s.bundle_sha256 or '-')[:12]}) at threshold {s.alert_threshold}"
        )
    if not cards:
        console.print(f"no live worker announced itself in the last {TTL_S} s (vigil worker; vigil demo)")
    for c in cards:
        if c.stalled_partitions:
            console.print(
                f"[red]{c.worker} holds {c.stalled_partitions} partition(s) with events waiting that it does not "
                "read:[/] their patients are not scored until it leaves its group, which it does by itself "
                "(docs/operations.md, 'A partition held but not read')"
            )
    if mixed:
        console.print(
            "[red]patients are scored by a different bundle or alerted at a different threshold depending on "
            "their partition:[/] stop the workers on the old one (docs/operations.md, 'Changing the bundle')"
        )
    expected_ok = None
    if expect_bundle is not None:
        versions = sorted({str(s.bundle_version) for s in served})
        # one version is not yet one bundle at one threshold: two builds labelled alike (another
        # sha256), or a worker without the site's VIGIL_SITE__* (another threshold), are mixed too
        expected_ok = versions == [expect_bundle] and not mixed
        if expected_ok:
            console.print(f"every live scoring worker serves bundle {expect_bundle}")
        elif versions == [expect_bundle]:
            console.print(f"not yet: the workers on {expect_bundle} differ in its file or its alert threshold (MIXED)")
        else:
            console.print(
                f"not yet: live scoring workers serve {', '.join(versions) or 'nothing'}, expected {expect_bundle}"
            )
    if json_out:
        emit_json(
            {
                "workers": [c.model_dump(mode="json") for c in cards],
                "serving": [s.summary() for s in served],
                "mixed_groups": sorted(mixed),
                **({"expected_bundle": expect_bundle, "as_expected": expected_ok} if expect_bundle else {}),
            }
        )
    if expected_ok is False:
        raise typer.Exit(1)


def _ago(now: datetime, then: datetime) -> str:
    s = max(0, int((now - then).total_seconds()))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def register(app: typer.Typer) -> None:
    app.command("workers")(workers)
