"""VigilWardInputsDrifted reads the workers' vigil_drift_drifted only (promtool, as
test_alert_rules_promtool.py): the dashboard mirrors each ward's newest vigil.drift record on its own
/metrics, and kept a ward's last "drifted" after every worker had dropped the ward's series (below its
gate, or scaled away): the rule, taking the largest over every job, paged for good."""

from __future__ import annotations

from pathlib import Path

from test_alert_rules_promtool import W1, W2, WEB, Case, run_promtool, series

CASES: dict[str, Case] = {
    "ward drifted: the dashboard's mirror alone": (
        "VigilWardInputsDrifted",
        [
            series("vigil_drift_drifted", {**WEB, "ward": "MICU"}, "1x300"),
            series("vigil_drift_drifted", {**W1, "ward": "MICU"}, "1 0x299"),  # the worker: within range now
        ],
        "62m",
        [],
    ),
    "ward drifted: on a worker, mirrored by the dashboard": (
        "VigilWardInputsDrifted",
        [
            series("vigil_drift_drifted", {**WEB, "ward": "MICU"}, "1x300"),
            series("vigil_drift_drifted", {**W2, "ward": "MICU"}, "0 1x300"),
        ],
        "62m",
        [{"ward": "MICU"}],
    ),
}


def test_the_drift_alert_follows_the_workers_not_the_dashboards_mirror(tmp_path: Path) -> None:
    done = run_promtool(tmp_path, CASES)
    assert done.returncode == 0, done.stdout + done.stderr
