"""Commands for the clinical models: ``vigil train``, ``vigil predict``, ``vigil evaluate``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vigil.cli.jsonout import emit_json

if TYPE_CHECKING:
    from vigil.models.offline import SeededShift
    from vigil.models.site_threshold import Site

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_PYTHON = REPO_ROOT / ".venv-train" / "bin" / "python"
console = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")]
ArtifactsOption = Annotated[
    Path | None,
    typer.Option(
        help="model artifacts directory (default: the bundle the worker serves, "
        "VIGIL_BUNDLE_DIR or models/artifacts/stepping)"
    ),
]

SitePrevalenceOption = Annotated[
    float | None,
    typer.Option(
        "--site-prevalence",
        min=0.0,
        max=1.0,
        help="share of the site's ICU stays that become septic (0.057 = 5.7 %): moves the alert threshold "
        "(default VIGIL_SITE__SEPSIS_PREVALENCE, else the shipped threshold)",
    ),
]
MaxAlertShareOption = Annotated[
    float | None,
    typer.Option(
        "--max-alert-share",
        min=0.0,
        max=1.0,
        help="burden ceiling: the threshold flags at most this share of set-A hours "
        "(default VIGIL_SITE__MAX_TRAINING_ALERT_SHARE, else none)",
    ),
]
SiteMeanRiskOption = Annotated[
    float | None,
    typer.Option(
        "--site-mean-risk",
        min=0.0,
        max=1.0,
        help="the served model's mean combined risk over the site's hours (`vigil predict --json` mean_risk "
        "on an export of its stays), read with --site-prevalence (default VIGIL_SITE__MEAN_RISK, else none)",
    ),
]


def _site_facts(prevalence: float | None, max_share: float | None, mean_risk: float | None) -> Site:
    """The site's threshold settings: the flags, else the worker's (VIGIL_SITE__*), so that
    `vigil predict` labels hours as the stream alerts."""
    from vigil.infra.settings import get_settings
    from vigil.models.site_threshold import Site

    site = get_settings().site
    return Site(
        prevalence if prevalence is not None else site.sepsis_prevalence,
        max_share if max_share is not None else site.max_training_alert_share,
        mean_risk if mean_risk is not None else site.mean_risk,
    )


def _site(prevalence: float | None, max_share: float | None, mean_risk: float | None, artifacts: Path | None) -> Site:
    """``_site_facts``, checked against the bundle's tables before any work starts (a value they
    cannot serve is one line)."""
    from vigil.models.stream_step import served_alert_threshold

    chosen = _site_facts(prevalence, max_share, mean_risk)
    served_alert_threshold(chosen, artifacts_dir=_artifacts(artifacts))
    return chosen


def _artifacts(artifacts: Path | None) -> Path | None:
    """The bundle the stream serves (``VIGIL_BUNDLE_DIR`` or the shipped one) unless told otherwise."""
    from vigil.infra.settings import get_settings
    from vigil.models.stream_step import served_bundle_dir

    return artifacts if artifacts is not None else served_bundle_dir(get_settings().bundle_dir)


def _shift(spec: str | None, seed: int) -> SeededShift | None:
    from vigil.models.shift import parse_shift

    if spec is None:
        return None
    try:
        return parse_shift(spec), seed
    except ValueError as exc:
        _fail(f"--shift {exc}")


def _fail(message: str) -> NoReturn:
    """A mistake the user can fix: one line, exit code 2, no traceback (cli.main prints it)."""
    from vigil.schemas.errors import UserError

    raise UserError(message)


def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,  # gone when the command ends: its summary line, or one line saying what failed
        disable=not console.is_terminal,  # piped or logged: no bar, and no blank line it leaves behind
    )


def psv_folder(path: Path, option: str = "--data", what: str = "challenge .psv files (`vigil data fetch`)") -> int:
    """A folder with .psv files, or one line saying what to pass instead (``what``: the files the
    option takes and the command that makes them: stays, or `vigil predict`'s predictions)."""
    from vigil.models.offline import list_psv
    from vigil.schemas.errors import UserError

    if not path.exists():
        raise UserError(f"{path} does not exist: pass {option} DIR, a folder of {what}")
    if not path.is_dir():
        raise UserError(f"{path} is not a folder: pass {option} DIR, a folder of {what}")
    n = len(list_psv(path))
    if n == 0:
        raise UserError(f"no .psv files in {path}: pass {option} DIR, a folder of {what}")
    return n


def train_command(
    data: Annotated[
        Path | None, typer.Option(help="set A directory (default ~/.cache/vigil/data/training_setA)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="artifacts directory (default models/artifacts/stepping)")] = None,
    seed: int = 2019,
    python: Annotated[Path | None, typer.Option(help="interpreter with the [train] extra (torch)")] = None,
) -> None:
    """Train and export both models (~20 min on 2 cores). Runs in the training venv: PyTorch is never
    imported by the serving process."""
    if data is not None:
        psv_folder(data)
    interpreter = python or (TRAIN_PYTHON if TRAIN_PYTHON.exists() else None)
    if interpreter is None:
        console.print(
            "[red]no training environment[/]: create one with\n"
            "  python -m venv .venv-train && .venv-train/bin/pip install -e '.[train]'\n"
            "then run `vigil train` again (or `.venv-train/bin/python -m vigil.models.train`)."
        )
        raise typer.Exit(2)
    cmd = [str(interpreter), "-m", "vigil.models.train", "--seed", str(seed)]
    if data:
        cmd += ["--data", str(data)]
    if out:
        cmd += ["--out", str(out)]
    console.print("$ " + " ".join(cmd))
    rc = subprocess.call(cmd, cwd=REPO_ROOT, env=dict(os.environ))
    raise typer.Exit(rc)


def predict_command(
    data: Annotated[Path, typer.Option(help="directory of challenge .psv files")],
    out: Annotated[Path, typer.Option(help="output directory (one .psv per input)")],
    artifacts: ArtifactsOption = None,
    site_prevalence: SitePrevalenceOption = None,
    max_alert_share: MaxAlertShareOption = None,
    site_mean_risk: SiteMeanRiskOption = None,
    json_out: JsonFlag = False,
) -> None:
    """Write PredictedProbability|PredictedLabel for every hour of every stay (challenge format); the
    label is the site's alert threshold (docs/operations.md, "The alert threshold of a site")."""
    from vigil.models.offline import predict_dir

    total = psv_folder(data)
    if out.resolve() == data.resolve():  # each prediction file takes its stay's name
        _fail(f"--out {out} is the --data folder: the predictions would overwrite the stays; pass another folder")
    site = _site(site_prevalence, max_alert_share, site_mean_risk, artifacts)
    with _progress("predicting") as bar:
        task = bar.add_task("predict", total=total)
        summary = predict_dir(
            data,
            out,
            progress=lambda done, n: bar.update(task, completed=done),
            artifacts_dir=_artifacts(artifacts),
            site=site,
        )
    choice = summary["threshold_choice"]
    console.print(
        f"{summary['patients']} stays, {summary['rows']} hours -> {out} in {summary['seconds']} s "
        f"(threshold {summary['threshold']:.4f}, {choice['rule']}"
        + (", raised to the alert-share ceiling" if choice["capped"] else "")
        + f"; mean risk {summary['mean_risk']})"
    )
    _say_out_of_range(summary["values_out_of_range"])
    if json_out:
        emit_json(summary)


def _say_out_of_range(count: int) -> None:
    """The values read as missing (``models.offline.read_stay``), said once: what the stays held that
    the stream would have refused."""
    if count:
        console.print(
            f"{count} values outside their plausible range read as missing, as the stream's ingest refuses them "
            "(out_of_range)"
        )


def evaluate_command(
    data: Annotated[Path, typer.Option(help="directory of challenge .psv files with SepsisLabel")],
    pred: Annotated[Path | None, typer.Option(help="predictions directory (default: predict into a temp dir)")] = None,
    rules: Annotated[bool, typer.Option(help="also score NEWS2/qSOFA/SIRS from the same rows")] = True,
    artifacts: ArtifactsOption = None,
    shift: Annotated[
        str | None,
        typer.Option(
            help="score a shifted copy: labs=0.1 keeps each hour's lab draw with p=0.1, "
            "vitals=0.5 each hour's vital-sign charting with p=0.5, labs=every24h at most one lab draw a day, "
            "panels=0.5 each optional lab panel (blood gas, lactate, liver, coagulation, troponin) "
            "ordered for half the stays"
        ),
    ] = None,
    shift_seed: Annotated[int, typer.Option(help="seed of the shift", min=0)] = 2019,
    site_prevalence: SitePrevalenceOption = None,
    max_alert_share: MaxAlertShareOption = None,
    site_mean_risk: SiteMeanRiskOption = None,
    json_out: JsonFlag = False,
) -> None:
    """Normalized utility (PhysioNet 2019), AUROC, AUPRC, side by side with NEWS2/qSOFA/SIRS, and the
    alert burden of the alert agent's lifecycle replayed over the predictions (`alerting`)."""
    import tempfile

    from vigil.models.offline import evaluate_dir, list_psv, predict_dir

    psv_folder(data)
    if pred is not None:
        psv_folder(pred, "--pred", "prediction .psv files (`vigil predict --out DIR` writes them)")
    shifted = _shift(shift, shift_seed)
    if shifted is not None and pred is not None:
        _fail("--shift scores a shifted copy of the data: leave out --pred")
    if pred is not None and any(v is not None for v in (site_prevalence, max_alert_share, site_mean_risk)):
        _fail(
            "--pred holds labels at the threshold they were predicted with: give --site-prevalence, "
            "--site-mean-risk or --max-alert-share to `vigil predict`, or leave out --pred"
        )
    tmp = None
    predicted: dict[str, object] | None = None
    if pred is None:
        site = _site(site_prevalence, max_alert_share, site_mean_risk, artifacts)
        tmp = tempfile.TemporaryDirectory(prefix="vigil-pred-")
        pred = Path(tmp.name)
        total = len(list_psv(data))
        with _progress("predicting") as bar:
            task = bar.add_task("predict", total=total)
            predicted = predict_dir(
                data,
                pred,
                progress=lambda done, n: bar.update(task, completed=done),
                artifacts_dir=_artifacts(artifacts),
                shift=shifted,
                site=site,
            )
    with _progress("evaluating") as bar:
        task = bar.add_task("evaluate", total=len(list_psv(data)))
        result = evaluate_dir(
            data,
            pred,
            with_rules=rules,
            progress=lambda done, n: bar.update(task, completed=done),
            shift=shifted,
            # the threshold the labels were just set at (the replay's hysteresis exits below it);
            # predictions from --pred carry only their labels
            threshold=None if predicted is None else float(predicted["threshold"]),  # type: ignore[arg-type]
        )
    for name in ("model", "NEWS2", "qSOFA", "SIRS"):
        if name in result:
            r = result[name]
            console.print(
                f"{name:>6}: utility {r['utility']:.3f}  {_ranking(r)}  "
                f"alert hours/patient-day {r['alert_hours_per_patient_day']:.2f}"
            )
    _say_out_of_range(result["values_out_of_range"])
    if "alerting" in result:
        a = result["alerting"]
        console.print(
            f"alerting: {a['pages_per_patient_day']} pages/patient-day, septic stays paged before onset "
            f"{a['septic_stays_paged_before_onset']} (an alert opening in the 12 h before: "
            f"{a['septic_stays_alert_opened_within_12h_before_onset']}), median lead {a['median_lead_h']} h, "
            f"stays never septic paged {a['non_septic_stays_paged']}"
        )
    if predicted is not None:  # how the labels' threshold was chosen (shipped or the site's)
        result["threshold_choice"] = predicted["threshold_choice"]
    if tmp is not None:
        tmp.cleanup()
    if json_out:
        emit_json(result)


def _ranking(figures: dict[str, float | None]) -> str:
    """AUROC and AUPRC, or why they are undefined (``evaluate_dir`` gives None: no septic hour to
    rank, or every hour septic)."""
    if figures["auroc"] is None:
        why = "no septic stay" if figures["auprc"] is None else "no hour without the sepsis label"
        auprc = "" if figures["auprc"] is None else f"  AUPRC {figures['auprc']:.3f}"
        return f"AUROC undefined: {why}{auprc}"
    return f"AUROC {figures['auroc']:.3f}  AUPRC {figures['auprc']:.3f}"


def threshold_command(
    site_prevalence: SitePrevalenceOption = None,
    max_alert_share: MaxAlertShareOption = None,
    site_mean_risk: SiteMeanRiskOption = None,
    artifacts: ArtifactsOption = None,
    json_out: JsonFlag = False,
) -> None:
    """The alert threshold a site's settings give, before any worker runs: the flags, else
    VIGIL_SITE__* (docs/operations.md, "The alert threshold of a site")."""
    from vigil.models.site_threshold import site_threshold_hint
    from vigil.models.stream_step import served_alert_threshold

    folder = _artifacts(artifacts)
    chosen = served_alert_threshold(_site_facts(site_prevalence, max_alert_share, site_mean_risk), artifacts_dir=folder)
    if chosen is None:
        _fail(f"no bundle in {folder}: point --artifacts at a folder `vigil train` wrote")
    share = chosen.training_alert_share
    console.print(
        f"alert at combined risk >= {chosen.threshold:.4f} ({chosen.rule}; shipped {chosen.shipped_threshold:.4f})"
        + ("" if share is None else f", flags {100 * share:.1f} % of set-A hours")
        + (", raised to the alert-share ceiling" if chosen.capped else "")
    )
    if chosen.effective_prevalence is not None and chosen.site_mean_risk is not None:
        console.print(
            f"site prevalence {chosen.site_prevalence:g} read at {chosen.effective_prevalence:.4f}: the model's mean "
            f"risk {chosen.site_mean_risk:g} against set A's {chosen.training_mean_risk:g}"
        )
    hint = site_threshold_hint(chosen.rule)
    if hint:
        console.print(hint)
    if json_out:
        emit_json(chosen.summary())


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("predict")(predict_command)
    app.command("evaluate")(evaluate_command)
    app.command("threshold")(threshold_command)


if __name__ == "__main__":  # pragma: no cover
    _app = typer.Typer()
    register(_app)
    sys.exit(_app())
