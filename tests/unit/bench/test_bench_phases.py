"""The order of `vigil bench`'s phases and what a run reports beside its figures (bench.run.run_bench),
every phase a stand-in that says when it ran: the phases themselves run against a stack."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import vigil.bench.run as run
from vigil.infra.settings import Settings

AVAILABLE_EVENTS = 34_470  # the shipped sample's 100 stays


def stand_ins(monkeypatch, calls: list[str], plot_fails: bool = False) -> None:
    def phase(name: str, value: Any = None) -> Any:
        def stand_in(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return value() if callable(value) else value

        return stand_in

    def bench_events(stays: list[str], n: int) -> list[tuple[str, bytes, bytes]]:
        return [(f"e{i}", f"p{i % len(stays)}".encode(), b"{}") for i in range(min(n, AVAILABLE_EVENTS))]

    def plot_curve(*args: Any) -> None:
        calls.append("plot_curve")
        if plot_fails:
            raise PermissionError(13, "Permission denied")

    curve = {
        "us_per_sample": {1: 40.0, 64: 10.0},
        "end_to_end_us_per_sample": {1: 2000.0, 64: 450.0},
        "batch_speedup": 4.0,
        "end_to_end_batch_speedup": 4.4,
        "score_us_per_patient": 450.0,
    }
    point = {"workers": 1, "pipeline_events_per_s": 2400.0, "baseline_events_per_s": 2100.0}
    phases: dict[str, Any] = {
        "stack_up": None,
        "grow_partitions": {},
        "drain_backlog": {"found": 0, "left": 0},
        "ensure_dataset": Path("/nonexistent"),
        "pick_stays": [f"s{i}" for i in range(100)],
        "measure_baseline": {"events_per_s": 2100.0},
        "measure_pipeline": lambda: ({"events_per_s": 2400.0, "worker_peak_rss_mb": 165.0}, SimpleNamespace(pid=0)),
        "measure_latency": {"p50_ms": 30.0, "p99_ms": 70.0},
        "stop_worker": None,
        "rss_mb": 0.0,
        "redis_bytes_per_patient": {"bytes_per_patient": 1530.0},
        "batch_curve_or_why_not": curve,
        "workers_curve": [point, {**point, "workers": 2}],
        "latency_with_workers": {"workers": 2, "p50_ms": 35.0, "p99_ms": 95.0},
        "measure_mllp": {"runs": []},
    }
    for name, value in phases.items():
        # raising=False: drain_backlog is new; without it the order assertions are what fails
        monkeypatch.setattr(run, name, phase(name, value), raising=False)
    monkeypatch.setattr(run, "bench_events", bench_events)
    monkeypatch.setattr(run, "plot_curve", plot_curve)


def bench(**kwargs: Any) -> dict[str, Any]:
    options = {"n_events": 20_000, "rate": 1000.0, "latency_s": 60.0, "patients": 300, "plot_path": Path("c.png")}
    return run.run_bench(Settings(), workers=[1, 2], **(options | kwargs))


def test_the_mllp_phase_runs_after_every_worker_of_the_group(monkeypatch) -> None:
    """Its events land on vigil.events.raw with no worker running: before the curve, the curve's
    1-worker point read them inside its span (runs M1-M6: ~1,000 events/s for ~2,400)."""
    calls: list[str] = []
    stand_ins(monkeypatch, calls)
    bench()
    assert calls.index("measure_mllp") > calls.index("workers_curve")
    assert calls.index("measure_mllp") > calls.index("latency_with_workers")
    assert calls[-1] == "measure_mllp"


def test_the_run_reads_what_an_earlier_run_left_before_its_first_phase(monkeypatch) -> None:
    calls: list[str] = []
    stand_ins(monkeypatch, calls)
    bench()
    first_phase = min(calls.index("measure_baseline"), calls.index("measure_pipeline"))
    assert calls.count("drain_backlog") == 2  # the pipeline's group and the baseline's
    assert max(i for i, c in enumerate(calls) if c == "drain_backlog") < first_phase


def test_a_plot_that_cannot_be_written_keeps_the_run(monkeypatch) -> None:
    calls: list[str] = []
    stand_ins(monkeypatch, calls, plot_fails=True)
    result = bench()
    assert result["plot_error"] == "c.png: Permission denied"
    assert "workers_curve" in calls and result["workers_curve"][1]["workers"] == 2


def test_the_run_says_what_the_data_could_not_give(monkeypatch) -> None:
    stand_ins(monkeypatch, [])
    result = bench()
    assert result["warnings"] == [
        "300 patients asked, the data holds 100 stays: every phase used those",
        "the latency phase offered 34,470 events (34 s at 1000/s), not 60,000: the data holds no more",
    ]
    assert bench(patients=100, latency_s=30.0)["warnings"] == []


@pytest.mark.parametrize(
    ("found", "said"),
    [
        ((300, 300, 20_000, 20_000, 60_000, 60_000), []),
        ((300, 100, 20_000, 20_000, 60_000, 60_000), ["300 patients asked, the data holds 100 stays"]),
        ((100, 100, 40_000, 34_470, 60_000, 60_000), ["40,000 events asked for the throughput phases"]),
        ((100, 100, 20_000, 20_000, 60_000, 34_470), ["the latency phase offered 34,470 events (34 s at 1000/s)"]),
    ],
)
def test_each_shortfall_is_one_sentence(found: tuple[int, ...], said: list[str]) -> None:
    warnings = run.data_shortfall(*found, rate=1000.0)
    assert len(warnings) == len(said) and all(w.startswith(s) for w, s in zip(warnings, said, strict=True))


def test_a_phase_that_covers_less_than_it_says_is_a_warning(monkeypatch) -> None:
    """A phase that timed out, left events neither scored nor dead-lettered, or began before its
    workers had split the partitions reported its figure with nothing beside it: `complete: false`
    was in the JSON only."""
    calls: list[str] = []
    stand_ins(monkeypatch, calls)
    timed_out = {"events_per_s": 2500.0, "worker_peak_rss_mb": 165.0, "complete": False, "unaccounted": 15_000}
    monkeypatch.setattr(run, "measure_pipeline", lambda *args, **kwargs: (dict(timed_out), SimpleNamespace(pid=0)))
    point = {"workers": 2, "pipeline_events_per_s": 2400.0, "baseline_events_per_s": 2100.0}
    unsplit = {"complete": True, "unaccounted": 0, "group_split_before_load": False}
    settled = {"complete": True, "unaccounted": 0, "group_split_before_load": True}
    curve = [{**point, "pipeline": unsplit, "baseline": settled}]
    monkeypatch.setattr(run, "workers_curve", lambda *args: curve)
    warnings = bench(patients=100, latency_s=30.0)["warnings"]
    assert warnings == [
        "pipeline: timed out, 15,000 events neither scored nor dead-lettered; its figures cover only the events "
        "accounted for",
        "pipeline with the treatment agent: timed out, 15,000 events neither scored nor dead-lettered; its figures "
        "cover only the events accounted for",
        "2 worker(s), pipeline: its workers had not split the partitions when the load began; its figures cover "
        "only the events accounted for",
    ]
