"""`vigil bench` and `vigil replay`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from vigil.cli.jsonout import emit_json
from vigil.infra.settings import get_settings

console = Console()
JsonFlag = Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")]


def bench(
    events: int = typer.Option(20000, help="events preloaded for the throughput comparison"),
    rate: float = typer.Option(1000.0, help="offered rate (events/s) for the latency measurement"),
    latency_s: float = typer.Option(15.0, help="seconds of offered load for the latency measurement"),
    patients: int = typer.Option(300, help="ICU stays whose events are interleaved"),
    plot: Path = typer.Option(Path("docs/images/batch_curve.png"), help="batch-size curve PNG"),
    out: Path = typer.Option(Path("bench/results/latest.json"), help="full results JSON"),
    quick: bool = typer.Option(
        False, "--quick", help="pipeline vs baseline, latency and Redis size only (no treatment run, no batch curve)"
    ),
    json_out: JsonFlag = False,
) -> None:
    """Pipeline vs bare Faust on the same broker, latency at a fixed rate, batching, Redis size."""
    from vigil.bench.run import run_bench
    from vigil.infra.logging import configure_logging

    configure_logging(level="WARNING")
    result = run_bench(get_settings(), events, rate, latency_s, patients, None if quick else plot, quick=quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title="vigil bench")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("goal")
    goals = {"ratio": ">= 0.5", "p99_ms": "<= 250", "batch_speedup": ">= 4", "redis_bytes_per_patient": "<= 4096"}
    for key in (
        "baseline_events_per_s",
        "pipeline_events_per_s",
        "ratio",
        "p50_ms",
        "p99_ms",
        "batch_speedup",
        "redis_bytes_per_patient",
    ):
        table.add_row(key, str(result[key]), goals.get(key, ""))
    console.print(table)
    if json_out:
        emit_json(result)


def replay(
    data: Path = typer.Option(..., "--data", help="folder of challenge-format .psv files"),
    limit: int = typer.Option(5, help="number of stays (sorted by name)"),
    json_out: JsonFlag = False,
) -> None:
    """Push stays through Kafka and the full pipeline; compare every score with `vigil predict`."""
    from vigil.cli.streamcheck import run_replay_check
    from vigil.infra.logging import configure_logging

    configure_logging(level="WARNING")
    result = run_replay_check(get_settings(), data, limit)
    console.print(
        f"{result['hours_compared']} hourly scores compared over {result['patients']} stays: "
        f"max |stream - offline| = {result['max_abs_diff']:.2e}"
    )
    if json_out:
        emit_json(result)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
    app.command("replay")(replay)
