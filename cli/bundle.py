"""``vigil bundle check``: before a bundle is rolled out (``VIGIL_BUNDLE_DIR``), check on this
machine that it opens, scores as its training did and that the stream equals `vigil predict` on it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from vigil.cli.jsonout import emit_json

if TYPE_CHECKING:
    from vigil.models.bundle_check import DriftCheck

bundle_app = typer.Typer(help="Model bundles: check one before it is served", no_args_is_help=True)
console = Console()
JsonFlag = Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")]


@bundle_app.command("check")
def check(
    artifacts: Annotated[
        Path | None,
        typer.Argument(help="the bundle folder (default: the one the worker serves, VIGIL_BUNDLE_DIR or the shipped)"),
    ] = None,
    data: Annotated[
        Path | None, typer.Option(help="challenge .psv stays for the stream check (default: the demo's stays)")
    ] = None,
    stays: Annotated[int, typer.Option(min=1, max=2000, help="stays advanced hour by hour")] = 20,
    json_out: JsonFlag = False,
) -> None:
    """Open the bundle (every file against its sha256), compare its graphs with the reference arrays
    training wrote, and advance real stays hour by hour as the worker does against `vigil predict`'s
    scores of the same rows; check the drift reference the worker watches wards with and read the
    stays against it. Exit 1 when any difference is above the tolerance or the reference is unusable."""
    from vigil.cli.models import psv_folder
    from vigil.infra.dataset import resolve_dataset
    from vigil.infra.replay import load_stays
    from vigil.infra.settings import get_settings
    from vigil.models.bundle import load_stepping_bundle, require_stepping_bundle
    from vigil.models.bundle_check import TOLERANCE, drift_check, reference_checks, stream_checks, training_figures
    from vigil.models.hour_zero import first_measured_row
    from vigil.models.offline import list_psv
    from vigil.models.stream_step import served_bundle_dir

    settings = get_settings()
    folder = artifacts if artifacts is not None else served_bundle_dir(settings.bundle_dir)
    require_stepping_bundle(folder, "", "pass the folder `vigil train` wrote")
    source = data if data is not None else resolve_dataset(settings.data_dir, settings.home).path
    psv_folder(source)  # a folder of stays, or one line saying what to pass
    files = list_psv(source)[:stays]
    bundle = load_stepping_bundle(folder, intra_op_threads=settings.batch.intra_op_threads)
    loaded = load_stays(files)
    # each stay's hours as the worker holds them: from its first measurement (models.hour_zero); a stay
    # without one is never scored
    measured = [(s, s.matrix[first_measured_row(s.matrix) :]) for s in loaded]
    loaded = [s for s, m in measured if len(m)]
    matrices = [m for _, m in measured if len(m)]
    checks = reference_checks(bundle) + stream_checks(bundle, matrices, [s.static for s in loaded])
    for c in checks:
        mark = "[green]ok[/]" if c.ok else "[red]FAILED[/]"
        console.print(f"{mark}  {c.name}: max |difference| {c.max_abs_diff:.1e} over {c.rows:,} probabilities")
    drift = drift_check(bundle, matrices, [s.static for s in loaded])
    console.print(_drift_line(drift))
    ok = all(c.ok for c in checks) and drift.ok
    figures = training_figures(folder)
    if figures is not None:
        cv, worst = figures["cv"], figures["shift_worst"]
        console.print(
            f"alert score as trained (metrics.json): set A CV AUROC {cv['auroc']:.3f} / utility {cv['utility']:.3f}; "
            f"worst shift test {worst['auroc']:.3f} / {worst['utility']:.3f} (docs/models.md)"
        )
    if bundle.hour_zero != "first-measurement":  # served, but an hour or more off on many stays
        console.print(
            f"[yellow]note[/]  bundle {bundle.version} was trained counting a stay's hours from its file's first row;"
            " the stream and vigil predict count from the first measurement, so stays whose first row was empty are"
            " scored with fewer ICU hours than it was trained on: prefer a bundle of 2.7.0 or later"
            ' (docs/models.md, "Hour 0")'
        )
    providers = bundle.step_session.get_providers()
    console.print(
        f"bundle {bundle.version} in {folder} ({providers[0]}): "
        + (f"every check within {TOLERANCE:g}" if ok else "a check failed")
        + ("" if ok else ": do not serve it on this machine; rebuild it (`vigil train`) or fix the runtime")
    )
    if json_out:
        emit_json(
            {
                "bundle": bundle.version,
                "folder": str(folder),
                "providers": providers,
                "stays": len(loaded),
                "tolerance": TOLERANCE,
                "checks": [c.summary() for c in checks],
                "drift_reference": drift.summary(),
                "training_figures": figures,
                "hour_zero": bundle.hour_zero,
                "ok": ok,
            }
        )
    if not ok:
        raise typer.Exit(1)


def _drift_line(drift: DriftCheck) -> str:
    if not drift.ok:
        return (
            f"[red]FAILED[/]  drift reference: {'; '.join(drift.problems)}: a worker would watch no ward's "
            "drift (rewrite it: python -m vigil.models.train.drift_reference --out DIR)"
        )
    r = drift.reading
    if r is None:
        return "[green]ok[/]  drift reference usable (no stay to read against it)"
    where = "above" if r.drifted else "within"
    return (
        f"[green]ok[/]  drift reference usable; the {r.patients} stays as one ward: largest input PSI "
        f"{r.max_psi:.2f} ({r.top[0][0] if r.top else '-'}), {where} {r.threshold:.2f} "
        f"(training wards of {r.patients} patients, 99th percentile)"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(bundle_app, name="bundle")
