"""`vigil bench` and `vigil replay`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vigil.cli.jsonout import emit_json
from vigil.cli.signals import stop_on_signals
from vigil.infra.settings import get_settings

console = Console()
JsonFlag = Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")]


def bench(
    events: int = typer.Option(20000, min=1, help="events preloaded for the throughput comparison"),
    rate: float = typer.Option(1000.0, min=1.0, help="offered rate (events/s) for the latency measurement"),
    latency_s: float = typer.Option(
        60.0,
        min=1.0,
        help="seconds of offered load for the latency measurement (15 s hid an intake that fell behind "
        "after 20 s: docs/performance.md)",
    ),
    patients: int = typer.Option(300, min=1, help="ICU stays whose events are interleaved"),
    plot: Path = typer.Option(Path("docs/images/batch_curve.png"), help="batch-size curve PNG"),
    out: Path = typer.Option(Path("bench/results/latest.json"), help="full results JSON"),
    quick: bool = typer.Option(
        False,
        "--quick",
        help="pipeline vs baseline, latency and Redis size only (no treatment run, no batch curve, no MLLP "
        "listener run, no scale-out curve unless --workers is given)",
    ),
    workers: str | None = typer.Option(
        None,
        "--workers",
        help="scale-out curve: N (1..N workers) or a list (1,2,4); default 1,2,3 (none with --quick). "
        "The bench grows its topics to --partitions partitions: run it on a bench stack",
    ),
    partitions: int = typer.Option(12, min=1, help="partitions of the consumed topics when the curve runs"),
    json_out: JsonFlag = False,
) -> None:
    """Pipeline vs bare Faust on the same broker, latency at a fixed rate, batching, Redis size,
    events/s per worker count."""
    from vigil.bench.run import run_bench
    from vigil.bench.scaleout import parse_counts
    from vigil.infra.logging import configure_logging
    from vigil.schemas.errors import UserError

    try:
        counts = parse_counts(workers) if workers else ([] if quick else [1, 2, 3])
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    configure_logging(level="WARNING")
    with stop_on_signals():  # a bench stopped by SIGTERM/SIGHUP stops its workers too
        result = run_bench(
            get_settings(),
            events,
            rate,
            latency_s,
            patients,
            None if quick else plot,
            quick=quick,
            workers=counts,
            partitions=partitions,
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title="vigil bench")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("goal")
    goals = {"ratio": ">= 0.7", "p99_ms": "<= 150", "batch_speedup": ">= 4", "redis_bytes_per_patient": "<= 4096"}
    for key in (
        "baseline_events_per_s",
        "pipeline_events_per_s",
        "ratio",
        "p50_ms",
        "p99_ms",
        "batch_speedup",
        "score_us_per_patient",
        "redis_bytes_per_patient",
    ):
        table.add_row(key, str(result[key]), goals.get(key, ""))
    for point in result["workers_curve"]:
        table.add_row(
            f"{point['workers']} worker(s): pipeline / baseline events/s",
            f"{point['pipeline_events_per_s']} / {point['baseline_events_per_s']}",
            "",
        )
    for r in (result.get("mllp") or {}).get("runs", []):
        table.add_row(
            f"MLLP, {r['connections']} connection(s): messages/s, ACK p50 / p99 ms",
            f"{r['messages_per_s']}, {r['ack_p50_ms']} / {r['ack_p99_ms']}",
            "",
        )
    scaled = result.get("latency_with_workers")
    if scaled:
        table.add_row(f"p50 / p99 ms, {scaled['workers']} workers", f"{scaled['p50_ms']} / {scaled['p99_ms']}", "")
    console.print(table)
    if json_out:
        emit_json(result)


def replay(
    data: Path = typer.Option(..., "--data", help="folder of challenge-format .psv files"),
    limit: int = typer.Option(5, min=1, help="number of stays (sorted by name)"),
    json_out: JsonFlag = False,
) -> None:
    """Push stays through Kafka and the full pipeline; compare every score with `vigil predict`."""
    from vigil.cli.models import psv_folder
    from vigil.cli.streamcheck import run_replay_check
    from vigil.infra.logging import configure_logging

    psv_folder(data)  # a folder of stays, or one line saying what to pass
    configure_logging(level="WARNING")
    with stop_on_signals():  # SIGTERM/SIGHUP stop the replay's worker too
        result = run_replay_check(get_settings(), data, limit)
    console.print(
        f"{result['hours_compared']} hourly scores compared over {result['patients']} stays: "
        f"max |stream - offline| = {result['max_abs_diff']:.2e} (combined), "
        f"{result['deterioration_max_abs_diff']:.2e} (deterioration)"
    )
    if json_out:
        emit_json(result)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
    app.command("replay")(replay)
