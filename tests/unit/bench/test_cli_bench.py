"""`vigil bench`'s options and files (cli/bench.py), with the run itself a stand-in (5-10 minutes on a
stack): bad paths and worker counts fail before the run, a file that cannot be written at the end
keeps the printed figures, and the batch curve's default is beside the results, not in the docs."""

from __future__ import annotations

import json
from typing import Any

import pytest

import vigil.bench.run as run
from vigil.cli.main import main

RESULT: dict[str, Any] = {
    "baseline_events_per_s": 2100.0,
    "pipeline_events_per_s": 2400.0,
    "ratio": 1.14,
    "p50_ms": 30.0,
    "p99_ms": 70.0,
    "batch_speedup": 2.4,
    "score_us_per_patient": 450.0,
    "redis_bytes_per_patient": 1530.0,
    "workers_curve": [{"workers": 1, "pipeline_events_per_s": 2400.0, "baseline_events_per_s": 2100.0}],
    "warnings": ["300 patients asked, the data holds 100 stays: every phase used those"],
}


def bench(monkeypatch, capsys, *args: str, result: dict[str, Any] | None = None, then: Any = None) -> dict[str, Any]:
    """Run `vigil bench ARGS --json` with ``run_bench`` replaced; ``then(kwargs)`` runs in its place
    (after the options were checked, before the files are written)."""
    ran: dict[str, Any] = {}

    def run_bench(settings: Any, *positional: Any, **kwargs: Any) -> dict[str, Any]:
        ran.update(plot=positional[4], **kwargs)
        if then:
            then(ran)
        return dict(result or RESULT)

    monkeypatch.setattr(run, "run_bench", run_bench)
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as done:
        main(["bench", *args, "--json"])
    out = capsys.readouterr()
    return {"code": int(done.value.code or 0), "out": out.out, "err": out.err, "ran": ran}


def test_the_batch_curve_is_written_beside_the_results_not_over_the_docs_image(monkeypatch, capsys, tmp_path) -> None:
    out = tmp_path / "results" / "run-n1.json"
    got = bench(monkeypatch, capsys, "--out", str(out))
    assert got["code"] == 0, got["err"]
    assert got["ran"]["plot"] == tmp_path / "results" / "run-n1-batch-curve.png"
    assert json.loads(out.read_text())["pipeline_events_per_s"] == 2400.0
    assert bench(monkeypatch, capsys, "--out", str(out), "--plot", str(tmp_path / "c.png"))["ran"]["plot"] == (
        tmp_path / "c.png"
    )


@pytest.mark.parametrize("option", ["--out", "--plot"])
def test_a_folder_for_a_file_fails_before_the_run(monkeypatch, capsys, tmp_path, option: str) -> None:
    args = [option, str(tmp_path)] + (["--out", str(tmp_path / "r.json")] if option == "--plot" else [])
    got = bench(monkeypatch, capsys, *args)
    assert got["code"] == 2 and got["ran"] == {}, "the bench ran before its file's path was checked"
    (line,) = got["err"].splitlines()
    assert line.startswith(f"error: {option} {tmp_path} is a folder")


def test_a_path_whose_folder_cannot_be_made_fails_before_the_run(monkeypatch, capsys, tmp_path) -> None:
    (tmp_path / "file").write_text("")
    got = bench(monkeypatch, capsys, "--out", str(tmp_path / "file" / "r.json"))
    assert got["code"] == 2 and got["ran"] == {}
    assert got["err"].startswith(f"error: --out {tmp_path / 'file' / 'r.json'}: cannot make its folder")


def test_checking_the_paths_makes_no_folder(monkeypatch, capsys, tmp_path) -> None:
    """A run that fails (no stack) leaves no empty results folder behind."""
    out = tmp_path / "new" / "results" / "r.json"

    def no_stack(ran: dict[str, Any]) -> None:
        assert not (tmp_path / "new").exists()
        raise ConnectionError("no broker")

    assert bench(monkeypatch, capsys, "--out", str(out), then=no_stack)["code"] != 0
    assert not (tmp_path / "new").exists()


def test_a_results_file_that_cannot_be_written_keeps_the_printed_figures(monkeypatch, capsys, tmp_path) -> None:
    out = tmp_path / "r.json"
    got = bench(monkeypatch, capsys, "--out", str(out), then=lambda ran: out.mkdir())  # taken during the run
    assert got["code"] == 1
    (line,) = got["err"].splitlines()
    assert line.startswith(f"error: could not write {out}: Is a directory")
    summary = json.loads(got["out"].splitlines()[-1])
    assert summary["pipeline_events_per_s"] == 2400.0 and summary["ok"] is False
    assert "pipeline_events_per_s" in got["out"] and "2400.0" in got["out"]  # the table, above the JSON
    assert "the data holds 100 stays" in got["out"]  # the run's warnings are in the table too


def test_a_plot_the_run_could_not_write_fails_the_command_with_the_figures(monkeypatch, capsys, tmp_path) -> None:
    failed = {**RESULT, "plot_error": f"{tmp_path / 'c.png'}: Permission denied"}
    got = bench(monkeypatch, capsys, "--out", str(tmp_path / "r.json"), result=failed)
    assert got["code"] == 1 and "Permission denied" in got["err"]
    assert json.loads((tmp_path / "r.json").read_text())["plot_error"].endswith("Permission denied")
    assert json.loads(got["out"].splitlines()[-1])["pipeline_events_per_s"] == 2400.0


def test_more_workers_than_partitions_is_refused_before_the_run(monkeypatch, capsys, tmp_path) -> None:
    out = str(tmp_path / "r.json")
    got = bench(monkeypatch, capsys, "--out", out, "--workers", "1,13")
    assert got["code"] == 2 and got["ran"] == {}
    (line,) = got["err"].splitlines()
    assert "--workers 13 is more than the 12 partitions" in line and "--partitions 13" in line
    got = bench(monkeypatch, capsys, "--out", out, "--workers", "1,13", "--partitions", "13")
    assert got["code"] == 0 and got["ran"]["workers"] == [1, 13]
