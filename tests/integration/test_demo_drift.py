"""`vigil demo` (as `make demo` runs it, fewer stays): the worker's /metrics carries each ward's input
drift (vigil_drift_*) while the demo runs, and the demo's JSON summary reports it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from tests.conftest import free_port, link_cached_kafka_jars
from vigil.cli.demo import run_demo
from vigil.infra.settings import Settings
from vigil.models.bundle import STEPPING_DIR
from vigil.models.integrity import load_manifest

pytestmark = pytest.mark.integration

# set A beside the checkout when present, else the cache, else the shipped sample (the demo resolves it)
DATA = Path(__file__).parents[3] / "shared" / "data" / "physionet2019"


def test_demo_worker_exposes_ward_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a stack of its own: on the session's stack the shared worker (same consumer group) can keep
    # every partition through the short replay and leave the demo's worker nothing to measure
    from vigil.infra.settings import KafkaSettings, RedisSettings
    from vigil.infra.stack import stack_down

    home = tmp_path / "home"
    link_cached_kafka_jars(home)
    settings = Settings(
        home=home,
        kafka=KafkaSettings(embedded_port=free_port(), embedded_controller_port=free_port()),
        redis=RedisSettings(embedded_port=free_port()),
        data_dir=DATA,
    )
    # 8 stays give 4 patients and ~150 closed hours per ward: score wards from one patient and 10
    # hours on (the defaults, 10 and 200, keep small wards' chance PSI quiet)
    monkeypatch.setenv("VIGIL_DRIFT__MIN_HOURS", "10")
    monkeypatch.setenv("VIGIL_DRIFT__MIN_PATIENTS", "1")
    try:
        # 16 patient-hours a second
        summary = run_demo(settings, 8, 16.0, None, 2, Console(file=io.StringIO()), quiet=True)
    finally:
        stack_down(settings)
    assert summary["lost"] == 0
    # wards with drift figures (vigil_drift_*); a ward may also show only closed hours (below the
    # drift window's minimum, or events without a ward: "unknown")
    drifted = {ward: d for ward, d in summary["drift"].items() if "hours" in d}
    assert drifted, "no vigil_drift_* series on the worker's /metrics"
    served = summary["alert_threshold"]  # vigil_alert_threshold*: the shipped threshold
    assert served["bundle"] == load_manifest(STEPPING_DIR)["version"]  # vigil_bundle_info: the shipped bundle
    assert served["threshold"] > 0 and 0 < served["training_share"] < 1
    assert 0 < served["training_mean_risk"] < 1  # vigil_training_mean_risk
    for ward, d in drifted.items():
        assert ward in ("ICU-A", "ICU-B")
        assert d["hours"] >= 10 and d["max_psi"] >= 0 and d["drifted"] in (0.0, 1.0)
        assert d["drifted"] == float(d["max_psi"] > d["psi_cutoff"])  # vigil_drift_threshold: the ward's cut-off
        # vigil_closed_hours_total: every closed hour the drift window holds was counted
        assert d["closed_hours"] >= d["hours"]
    for d in summary["drift"].values():
        assert d["closed_hours"] > 0 and 0.0 <= d["alert_share"] <= 1.0
        # vigil_closed_hours_risk_total over the hours: the ward's mean combined risk, a probability
        assert 0.0 < d["mean_risk"] < 1.0
