"""`vigil bench` and `vigil replay`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from vigil.cli.jsonout import emit_json
from vigil.cli.signals import stop_on_signals
from vigil.infra.settings import get_settings
from vigil.schemas.errors import UserError

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
    plot: Path | None = typer.Option(
        None, help="batch-size curve PNG (default: beside --out, named after it: latest-batch-curve.png)"
    ),
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
    from vigil.bench.scaleout import counts_within, parse_counts, with_partitions
    from vigil.infra.logging import configure_logging

    settings = get_settings()
    try:
        counts = parse_counts(workers) if workers else ([] if quick else [1, 2, 3])
        counts_within(counts, with_partitions(settings, partitions).kafka.partitions)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    plot = plot or default_plot(out)
    # the files are written after minutes of measuring: a path that cannot take them fails now
    writable_file(out, "--out")
    if not quick:
        writable_file(plot, "--plot")
    configure_logging(level="WARNING")
    with stop_on_signals():  # a bench stopped by SIGTERM/SIGHUP stops its workers too
        result = run_bench(
            settings,
            events,
            rate,
            latency_s,
            patients,
            None if quick else plot,
            quick=quick,
            workers=counts,
            partitions=partitions,
        )
    failures = [result["plot_error"]] if result.get("plot_error") else []
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    except OSError as exc:  # the figures are still printed below: a run is not thrown away
        failures.append(f"{out}: {exc.strerror or exc}")
    console.print(bench_table(result))
    why = "; ".join(failures)
    if failures:
        sys.stderr.write(f"error: could not write {why} (the results are printed on stdout)\n")
    if json_out:
        emit_json({**result, "ok": False, "error": f"could not write {why}"} if failures else result)
    if failures:
        raise typer.Exit(1)


def default_plot(out: Path) -> Path:
    """The batch curve beside the results it belongs to (``latest.json`` → ``latest-batch-curve.png``):
    the default was docs/images/batch_curve.png, which every full run overwrote under the text of the
    run the doc describes."""
    return out.with_name(f"{out.stem}-batch-curve.png")


def writable_file(path: Path, option: str) -> None:
    """``path`` can be written once the run is over (its missing folders made then, not now: a run
    that fails leaves nothing behind), or a ``UserError`` naming ``option``."""
    if path.is_dir():
        raise UserError(f"{option} {path} is a folder: name a file in it (e.g. {path / 'latest.json'})")
    folder = path.absolute().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise UserError(f"{option} {path}: cannot make its folder ({folder} is a file)")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UserError(f"{option} {path} cannot be written: choose a path you can write to")


def bench_table(result: dict[str, Any]) -> Table:
    """The run's figures against their goals, and what the data could not give (``warnings``)."""
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
    for warning in result.get("warnings", []):
        table.add_row("[yellow]warning[/]", warning, "")
    return table


def replay(
    data: Path = typer.Option(..., "--data", help="folder of challenge-format .psv files"),
    limit: int = typer.Option(5, min=1, help="number of stays (sorted by name)"),
    json_out: JsonFlag = False,
) -> None:
    """Push stays through Kafka and the full pipeline; compare every score with `vigil predict`."""
    from vigil.cli.models import psv_folder
    from vigil.cli.streamcheck import replay_problems, run_replay_check
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
    problems = replay_problems(result)
    result["ok"], result["problems"] = not problems, problems
    for problem in problems:
        console.print(f"[red]not equal:[/red] {problem}")
    if json_out:
        emit_json(result)
    if problems:
        raise typer.Exit(1)  # the figures and the JSON are out; the check failed


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
    app.command("replay")(replay)
