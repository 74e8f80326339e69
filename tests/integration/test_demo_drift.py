"""`vigil demo` (as `make demo` runs it, fewer stays): the worker's /metrics carries each ward's input
drift (vigil_drift_*) while the demo runs, and the demo's JSON summary reports it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from vigil.cli.demo import run_demo
from vigil.infra.settings import Settings

pytestmark = pytest.mark.integration

# set A beside the checkout when present, else the cache, else the shipped sample (the demo resolves it)
DATA = Path(__file__).parents[3] / "shared" / "data" / "physionet2019"


def test_demo_worker_exposes_ward_drift(stack, stack_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # 8 stays give 4 patients and ~150 closed hours per ward, and the session's shared worker (same
    # consumer group) may take half the partitions once the demo's worker joins: score wards from one
    # patient and 10 hours on (the defaults, 10 and 200, keep small wards' chance PSI quiet)
    monkeypatch.setenv("VIGIL_DRIFT__MIN_HOURS", "10")
    monkeypatch.setenv("VIGIL_DRIFT__MIN_PATIENTS", "1")
    settings = stack_settings.model_copy(update={"data_dir": DATA})
    # 16 patient-hours a second: the demo's worker joins the group while the stays are replayed
    summary = run_demo(settings, 8, 16.0, None, 2, Console(file=io.StringIO()), quiet=True)
    assert summary["lost"] == 0
    assert summary["drift"], "no vigil_drift_* series on the worker's /metrics"
    for ward, d in summary["drift"].items():
        assert ward in ("ICU-A", "ICU-B")
        assert d["hours"] >= 10 and d["max_psi"] >= 0 and d["drifted"] in (0.0, 1.0)
