from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from vigil.models.integrity import load_manifest
from vigil.models.offline import evaluate_dir, predict_dir, read_psv
from vigil.models.site_threshold import Site
from vigil.models.stream_step import served_bundle_dir

ART = Path(os.environ.get("VIGIL_TEST_ARTIFACTS", served_bundle_dir()))


def test_read_psv(psv_dir: Path) -> None:
    m, static, labels = read_psv(psv_dir / "p000002.psv")
    assert m.shape == (60, 34) and m.dtype == np.float32
    assert static["Age"] == 67.0 and static["Gender"] == 1.0
    assert labels is not None and labels.sum() == 20


def test_predict_dir_writes_challenge_format(psv_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    seen: list[tuple[int, int]] = []
    summary = predict_dir(psv_dir, out, progress=lambda d, n: seen.append((d, n)), artifacts_dir=ART)
    assert summary["patients"] == 3 and summary["rows"] == 95
    assert seen[-1] == (3, 3)
    thr = load_manifest(ART)["models"]["combined"]["threshold"]
    for name, rows in (("p000001.psv", 30), ("p000002.psv", 60), ("p000003.psv", 5)):
        lines = (out / name).read_text().strip().split("\n")
        assert lines[0] == "PredictedProbability|PredictedLabel"
        assert len(lines) == rows + 1
        for line in lines[1:]:
            p, b = line.split("|")
            assert 0.0 <= float(p) <= 1.0
            assert int(b) == int(float(p) >= thr) or abs(float(p) - thr) < 1e-6


def test_evaluate_dir(psv_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    predict_dir(psv_dir, out, artifacts_dir=ART)
    result = evaluate_dir(psv_dir, out)
    assert result["patients"] == 3 and result["rows"] == 95
    for name in ("model", "NEWS2", "qSOFA", "SIRS"):
        assert set(result[name]) >= {"auroc", "auprc", "utility"}


def test_cli_predict_json(psv_dir: Path, tmp_path: Path) -> None:
    from vigil.cli.models import register

    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(
        app,
        ["predict", "--data", str(psv_dir), "--out", str(tmp_path / "o"), "--artifacts", str(ART), "--json"],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().split("\n")[-1])
    assert summary["patients"] == 3 and summary["rows"] == 95


def test_predict_dir_labels_at_the_sites_threshold(psv_dir: Path, tmp_path: Path) -> None:
    shipped = predict_dir(psv_dir, tmp_path / "a", artifacts_dir=ART)
    site = predict_dir(psv_dir, tmp_path / "b", artifacts_dir=ART, site=Site(0.02))
    assert site["threshold_choice"]["rule"] == "site_prevalence" and site["threshold"] > shipped["threshold"]
    assert shipped["threshold_choice"]["rule"] == "shipped"
    # the mean risk over every hour written: what a site sets as VIGIL_SITE__MEAN_RISK
    written = np.concatenate(
        [
            np.array([r.split("|") for r in f.read_text().split("\n")[1:] if r], float)[:, 0]
            for f in (tmp_path / "a").iterdir()
        ]
    )
    assert shipped["mean_risk"] == pytest.approx(written.mean(), abs=1e-5) and shipped["rows"] == len(written)
    for name in ("p000001.psv", "p000002.psv", "p000003.psv"):
        a = np.array([r.split("|") for r in (tmp_path / "a" / name).read_text().split("\n")[1:] if r], float)
        b = np.array([r.split("|") for r in (tmp_path / "b" / name).read_text().split("\n")[1:] if r], float)
        assert np.array_equal(a[:, 0], b[:, 0])  # the same probabilities
        assert np.array_equal(b[:, 1], (b[:, 0] >= site["threshold"]).astype(float))


def test_cli_predict_takes_the_site_from_the_worker_settings(psv_dir: Path, tmp_path: Path, monkeypatch) -> None:
    from vigil.cli.models import register
    from vigil.infra.settings import get_settings

    app = typer.Typer()
    register(app)
    argv = ["predict", "--data", str(psv_dir), "--artifacts", str(ART), "--json"]
    monkeypatch.setenv("VIGIL_SITE__SEPSIS_PREVALENCE", "0.03")
    get_settings.cache_clear()
    try:
        from_env = CliRunner().invoke(app, [*argv, "--out", str(tmp_path / "e")])
        flag = CliRunner().invoke(app, [*argv, "--out", str(tmp_path / "f"), "--site-prevalence", "0.15"])
    finally:
        monkeypatch.delenv("VIGIL_SITE__SEPSIS_PREVALENCE")
        get_settings.cache_clear()
    assert from_env.exit_code == 0 and flag.exit_code == 0, from_env.output + flag.output
    env_choice = json.loads(from_env.output.strip().split("\n")[-1])["threshold_choice"]
    flag_choice = json.loads(flag.output.strip().split("\n")[-1])["threshold_choice"]
    assert env_choice["site_prevalence"] == 0.03 and flag_choice["site_prevalence"] == 0.15
    assert env_choice["threshold"] > flag_choice["threshold"]


def test_cli_evaluate_scores_a_unit_charting_vitals_less_often(psv_dir: Path, tmp_path: Path) -> None:
    from vigil.cli.models import register

    app = typer.Typer()
    register(app)

    def evaluate(*extra: str) -> dict[str, Any]:
        res = CliRunner().invoke(app, ["evaluate", "--data", str(psv_dir), "--artifacts", str(ART), "--json", *extra])
        assert res.exit_code == 0, res.output
        return dict(json.loads(res.output.strip().split("\n")[-1]))

    recorded = evaluate()
    sparse = evaluate("--shift", "vitals=0.3", "--shift-seed", "4")
    assert sparse["shift"] == {"name": "vitals", "keep": 0.3, "seed": 4} and "shift" not in recorded
    assert sparse["rows"] == recorded["rows"]  # the hours stay; their vital signs go
    assert sparse["model"] != recorded["model"]
    assert evaluate("--shift", "vitals=0.3", "--shift-seed", "4")["model"] == sparse["model"]  # seeded
    daily = evaluate("--shift", "labs=every24h")  # at most one lab draw a day: a schedule, no seed needed
    assert daily["shift"] == {"name": "labs", "every_h": 24, "seed": 2019}
    assert daily["rows"] == recorded["rows"] and daily["model"] != recorded["model"]
    ordered = evaluate("--shift", "panels=0.3", "--shift-seed", "4")  # optional lab panels, per stay
    assert ordered["shift"] == {"name": "panels", "keep": 0.3, "seed": 4}
    assert ordered["rows"] == recorded["rows"] and ordered["model"] != recorded["model"]
    # the alert lifecycle is replayed at the threshold the labels were set at, not one read back from them
    served = round(recorded["threshold_choice"]["threshold"], 6)
    assert recorded["alerting"]["model_threshold"] == served
    assert recorded["alerting"]["model_threshold_from"] == "given"


def test_predict_scores_a_stay_from_its_first_measurement(psv_dir: Path, tmp_path: Path) -> None:
    """Rows before a stay's first measurement (its file's first rows, often empty in set A) hold no
    score: 0.0, no alert. Every later row is scored as the stream scores a feed's stay, hour 0 at the
    first measurement (models.hour_zero): the file without its empty rows, scored alone, gives the
    same numbers; a file with no measurement at all is written 0.0 in every row."""
    from vigil.models.offline import read_stay
    from vigil.schemas.codes import DYNAMIC_CODES

    header = (psv_dir / "p000001.psv").read_text().split("\n")[0].split("|")
    lines = (psv_dir / "p000001.psv").read_text().strip().split("\n")
    dynamic = [header.index(c) for c in DYNAMIC_CODES]
    empty = "|".join("NaN" if j in dynamic else v for j, v in enumerate(lines[1].split("|")))
    late, trimmed, silent = tmp_path / "late", tmp_path / "trimmed", tmp_path / "silent"
    for d in (late, trimmed, silent):
        d.mkdir()
    (late / "p1.psv").write_text("\n".join([lines[0], empty, empty, *lines[1:]]) + "\n")
    (trimmed / "p1.psv").write_text("\n".join(lines) + "\n")
    (silent / "p1.psv").write_text("\n".join([lines[0], empty, empty]) + "\n")
    assert read_stay(late / "p1.psv").matrix.shape[0] == 32
    got = predict_dir(late, tmp_path / "a", artifacts_dir=ART)
    want = predict_dir(trimmed, tmp_path / "b", artifacts_dir=ART)
    rows = (tmp_path / "a" / "p1.psv").read_text().strip().split("\n")[1:]
    assert rows[:2] == ["0.000000|0", "0.000000|0"]
    assert rows[2:] == (tmp_path / "b" / "p1.psv").read_text().strip().split("\n")[1:]
    assert got["rows"] == 32 and got["mean_risk"] == want["mean_risk"]  # over the hours scored
    none = predict_dir(silent, tmp_path / "c", artifacts_dir=ART)
    assert none["rows"] == 2 and none["mean_risk"] is None and none["alert_rows"] == 0


def test_a_shift_thins_a_stay_from_its_first_measurement_for_the_model_and_the_rules() -> None:
    """The rows `vigil predict` scores and `vigil evaluate`'s rules read under a shift are one
    (``measured_rows``), drawn from hour 0 on: a file that starts with empty rows is thinned as the
    same file without them (evaluate once thinned the whole file, predict the rows from the first
    measurement, so the rules read other rows than the model under labs=K and vitals=K)."""
    from vigil.models.offline import measured_rows
    from vigil.models.shift import parse_shift

    rng = np.random.default_rng(3)
    rows = rng.normal(80, 5, (40, 34)).astype(np.float32)
    rows[rng.random(rows.shape) < 0.5] = np.nan
    rows[0, 0] = 80.0  # measured at its first row
    padded = np.concatenate([np.full((3, 34), np.nan, np.float32), rows])
    for spec in ("labs=0.5", "vitals=0.5"):
        shift = (parse_shift(spec), 7)
        start, thinned = measured_rows(padded, shift, 11)
        assert start == 3
        np.testing.assert_array_equal(thinned, measured_rows(rows, shift, 11)[1])
        assert np.isnan(thinned).sum() > np.isnan(rows).sum()  # the shift thinned something
