"""`vigil bundle check` (``models.bundle_check``): the shipped bundle passes on this machine (its
reference checks also in test_bundle.py); a graph that no longer matches its training reference, or a
stream that drifts from offline scoring, fails."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from stepbundle import STATIC, build_test_bundle
from synthetic import synthetic_stay
from typer.testing import CliRunner

from vigil.cli.bundle import register
from vigil.models import bundle_check
from vigil.models.bundle import STEPPING_DIR, load_stepping_bundle
from vigil.models.bundle_check import (
    TREE_REFERENCE,
    drift_check,
    reference_checks,
    stream_checks,
    training_figures,
)
from vigil.models.drift import REFERENCE_FILE
from vigil.models.shift import thin_labs
from vigil.schemas.codes import DYNAMIC_CODES

SAMPLE = Path(__file__).parents[3] / "data" / "physionet2019-sample"


def repin(bundle_dir: Path, name: str) -> None:
    """Pin a rewritten file in the copy's manifest: the bundle opens, only the check can tell."""
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    manifest["files"][name]["sha256"] = hashlib.sha256((bundle_dir / name).read_bytes()).hexdigest()
    (bundle_dir / "manifest.json").write_text(json.dumps(manifest))


def stays(n: int, seed: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [synthetic_stay(rng, int(h))[:, : len(DYNAMIC_CODES)].astype(np.float32) for h in rng.integers(3, 70, n)]


def test_a_tree_graph_that_is_not_the_trained_model_fails(tmp_path: Path) -> None:
    """A bundle whose reference says the trees scored otherwise (a graph exported from another model):
    every file still matches the manifest, so only the check can tell."""
    copy = tmp_path / "bundle"
    shutil.copytree(STEPPING_DIR, copy)
    with np.load(copy / TREE_REFERENCE) as ref:
        arrays = {k: ref[k] for k in ref.files}
    arrays["probability"] = arrays["probability"] + 1e-3
    np.savez(copy / TREE_REFERENCE, **arrays)
    repin(copy, TREE_REFERENCE)
    checks = {c.name: c for c in reference_checks(load_stepping_bundle(copy, prefer_gpu=False))}
    assert not checks["trees against LightGBM"].ok
    assert checks["trees against LightGBM"].max_abs_diff == pytest.approx(1e-3, abs=1e-5)
    assert checks["deterioration stepped against the training framework"].ok
    res = check_command(str(copy), "--data", str(SAMPLE), "--stays", "2", "--json")
    assert res.exit_code == 1 and "do not serve it" in res.output
    assert json.loads(res.output.strip().split("\n")[-1])["ok"] is False


@pytest.mark.parametrize("inputs", ["v2", "v1"])
def test_the_stream_equals_offline_on_a_recurrent_bundle(tmp_path: Path, inputs: str) -> None:
    from vigil.models.stay_features import SEQUENCE_INPUTS_V1

    d = build_test_bundle(tmp_path / "b", sequence_inputs=SEQUENCE_INPUTS_V1 if inputs == "v1" else None)
    bundle = load_stepping_bundle(d, prefer_gpu=False)
    assert reference_checks(bundle) == []  # the synthetic bundle has no reference arrays
    assert training_figures(d) is None  # nor training's metrics
    matrices = stays(6)
    checks = stream_checks(bundle, matrices, [STATIC] * 6)
    assert all(c.ok for c in checks), [c.summary() for c in checks]
    assert checks[0].rows == sum(len(m) for m in matrices) + sum(len(m) - 1 for m in matrices)  # finals + newest


def test_a_stream_that_drifts_from_offline_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check reads what the worker's call publishes: a stream off by 1e-4 on one model fails it."""
    real = bundle_check.advance

    def drifting(*args, **kwargs):  # type: ignore[no-untyped-def]
        outs = real(*args, **kwargs)
        for out in outs:
            for m in out.current.models:
                if m.model == "deterioration":
                    object.__setattr__(m, "probability", m.probability + 1e-4)
        return outs

    monkeypatch.setattr(bundle_check, "advance", drifting)
    bundle = load_stepping_bundle(STEPPING_DIR, prefer_gpu=False)
    checks = {c.name: c for c in stream_checks(bundle, stays(3), [STATIC] * 3)}
    assert checks["stream combined against vigil predict"].ok
    assert not checks["stream deterioration against vigil predict"].ok


def test_a_stream_that_scores_nan_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream step that returns NaN for every probability is no match for offline scoring: the
    worst difference keeps the NaN (Python's max(0.0, nan) is 0.0, which passed it), and the check fails."""
    real = bundle_check.advance

    def nan_scoring(*args, **kwargs):  # type: ignore[no-untyped-def]
        outs = real(*args, **kwargs)
        for out in outs:
            for scored in [*out.closed, out.current]:
                for m in scored.models:
                    object.__setattr__(m, "probability", float("nan"))
        return outs

    monkeypatch.setattr(bundle_check, "advance", nan_scoring)
    bundle = load_stepping_bundle(STEPPING_DIR, prefer_gpu=False)
    checks = stream_checks(bundle, stays(3), [STATIC] * 3)
    assert [c.ok for c in checks] == [False, False], [c.summary() for c in checks]
    assert all(np.isnan(c.max_abs_diff) for c in checks)


def check_command(*args: str):  # type: ignore[no-untyped-def]
    app = typer.Typer()
    register(app)
    return CliRunner().invoke(app, ["bundle", "check", *args])


def test_the_command_prints_its_checks_and_exits_by_them() -> None:
    res = check_command("--data", str(SAMPLE), "--stays", "3", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().split("\n")[-1])
    assert summary["ok"] and summary["stays"] == 3 and len(summary["checks"]) == 5
    assert summary["drift_reference"]["ok"] and summary["drift_reference"]["stays"]["patients"] == 3
    assert summary["bundle"] == json.loads((STEPPING_DIR / "manifest.json").read_text())["version"]
    worst = json.loads((STEPPING_DIR / "metrics.json").read_text())["combined"]["worst"]
    assert summary["training_figures"]["shift_worst"] == {"auroc": worst["auroc"], "utility": worst["utility"]}
    assert summary["hour_zero"] == "first-measurement" and "first row" not in res.output


def test_a_bundle_trained_from_the_files_first_row_is_checked_with_a_note(tmp_path: Path) -> None:
    """2.0-2.6 counted a stay's hours from its file's first row; the stream counts from the first
    measurement (models.hour_zero): served, so not a failure, but said."""
    copy = tmp_path / "bundle"
    shutil.copytree(STEPPING_DIR, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["hour_zero"]  # as 2.6.0's manifest
    (copy / "manifest.json").write_text(json.dumps(manifest))
    res = check_command(str(copy), "--data", str(SAMPLE), "--stays", "2", "--json")
    assert res.exit_code == 0, res.output
    assert "trained counting a stay's hours from its file's first row" in " ".join(res.output.split())
    assert json.loads(res.output.strip().split("\n")[-1])["hour_zero"] == "first-row"


def sample_stays(n: int) -> list:  # type: ignore[type-arg]
    from vigil.infra.replay import load_stays
    from vigil.models.offline import list_psv

    return load_stays(list_psv(SAMPLE)[:n])


def test_the_drift_reading_tells_a_hospital_that_draws_fewer_labs() -> None:
    """Informative, not part of the verdict: the sample's stays read as training's; the same stays
    with one lab draw in ten kept (the shift of docs/models.md) read as drifted, by a measurement rate."""
    bundle = load_stepping_bundle(STEPPING_DIR, prefer_gpu=False)
    loaded = sample_stays(20)
    as_recorded = drift_check(bundle, [s.matrix for s in loaded], [s.static for s in loaded])
    assert as_recorded.ok and as_recorded.reading is not None and not as_recorded.reading.drifted
    assert as_recorded.reading.patients == 20
    rng = np.random.default_rng(0)
    thinned = drift_check(bundle, [thin_labs(s.matrix, 0.1, rng) for s in loaded], [s.static for s in loaded])
    assert thinned.ok and thinned.reading is not None and thinned.reading.drifted
    assert thinned.reading.top[0][0].endswith(("_rate", "_hours_since", " measured"))


def test_a_drift_reference_that_makes_no_sense_fails_the_check(tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(STEPPING_DIR, copy)
    ref = json.loads((copy / REFERENCE_FILE).read_text())
    name = next(iter(ref["top_feature_quantiles"]))
    ref["top_feature_quantiles"][name]["shares"] = [2 * v for v in ref["top_feature_quantiles"][name]["shares"]]
    (copy / REFERENCE_FILE).write_text(json.dumps(ref))
    repin(copy, REFERENCE_FILE)
    found = drift_check(load_stepping_bundle(copy, prefer_gpu=False), [], [])
    assert not found.ok and found.problems == [f"{name}: bin shares do not sum to 1 (missing included)"]
    res = check_command(str(copy), "--data", str(SAMPLE), "--stays", "2", "--json")
    assert res.exit_code == 1 and "drift reference" in res.output and "do not serve it" in res.output
    summary = json.loads(res.output.strip().split("\n")[-1])
    assert summary["ok"] is False and all(c["ok"] for c in summary["checks"])  # the graphs are fine


def test_a_bundle_without_a_drift_reference_fails_the_check(tmp_path: Path) -> None:
    d = build_test_bundle(tmp_path / "b")
    (d / REFERENCE_FILE).unlink()  # a bundle written before issue 12's drift check
    manifest = json.loads((d / "manifest.json").read_text())
    del manifest["files"][REFERENCE_FILE]
    (d / "manifest.json").write_text(json.dumps(manifest))
    found = drift_check(load_stepping_bundle(d, prefer_gpu=False), stays(2), [STATIC] * 2)
    assert not found.ok and "watches no ward's drift" in found.problems[0]
