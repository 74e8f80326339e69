"""deploy/prometheus's alerting rules evaluated by Prometheus's own engine (``promtool test rules``,
Debian's prometheus package): for each alert, the series of an incident it must page for, at the
time it must page, with its labels and its annotations as the on-call engineer reads them; and the
series of a healthy or merely noisy fleet, where it must stay quiet. The parse test beside this one
(test_prometheus_rules.py) only proves an expression is PromQL; this one proves it means what its
summary says (an aggregation that drops the label its summary names, a ``for`` that never ends, a
rate compared on the wrong scale all fail here)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).parents[3]
PROMETHEUS = REPO / "deploy" / "prometheus"
RULES = PROMETHEUS / "vigil-alerts.yml"

W1 = {"job": "vigil-worker", "instance": "worker-1:9100"}
W2 = {"job": "vigil-worker", "instance": "worker-2:9100"}
WEB = {"job": "vigil-web", "instance": "web:8000"}
MLLP = {"job": "vigil-mllp", "instance": "mllp:9101"}
RAW = "vigil.events.raw"


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{inner}}}", "values": values}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: install Debian's prometheus package (make system-deps)")
    return found


def rules_by_name() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return {rule["alert"]: rule for group in doc["groups"] for rule in group["rules"]}


def expected(alert: str, labels: dict[str, str]) -> dict[str, Any]:
    """The alert as it must reach the on-call engineer: the rule's labels over the series' labels
    that survive its aggregation, its annotations with ``{{ $labels.x }}`` filled in."""
    rule = rules_by_name()[alert]

    def fill(text: str) -> str:
        return re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels[m.group(1)], text)

    return {
        "exp_labels": {**labels, **rule["labels"]},
        "exp_annotations": {key: fill(value) for key, value in rule["annotations"].items()},
    }


# (alert, input series (15 s apart unless the case says), evaluation time, labels of each alert firing then)
# One case per incident and per healthy or noisy state; an empty list: must not fire.
Case = tuple[str, list[dict[str, str]], str, list[dict[str, str]]]
CASES: dict[str, Case] = {
    # a worker's scrape fails, the other never existed: no worker left
    "no worker: the last one stops answering": (
        "VigilNoWorkerUp",
        [series("up", W1, "1 1 1 0x20")],
        "2m",
        [{}],
    ),
    "no worker: none discovered at all": (
        "VigilNoWorkerUp",
        [series("up", WEB, "1x20")],
        "2m",
        [{"job": "vigil-worker"}],  # absent() keeps the job its selector names
    ),
    "no worker: one of two down is not this alert": (
        "VigilNoWorkerUp",
        [series("up", W1, "1x20"), series("up", W2, "1 0x20")],
        "4m",
        [],
    ),
    "no worker: a scrape missed for 30 s": ("VigilNoWorkerUp", [series("up", W1, "1 1 0 0 1x20")], "1m", []),
    "stalled partition": (
        "VigilPartitionStalled",
        [
            series("vigil_consumer_stalled_partitions", {**W1, "topic": RAW}, "0 0 2x20"),
            series("vigil_consumer_stalled_partitions", {**W2, "topic": RAW}, "0x22"),
        ],
        "2m",
        [{"instance": W1["instance"], "topic": RAW}],
    ),
    "stalled partition: a stall the watchdog cleared within a minute": (
        "VigilPartitionStalled",
        [series("vigil_consumer_stalled_partitions", {**W1, "topic": RAW}, "0 1 1 1 0x20")],
        "3m",
        [],
    ),
    "blocked event loop": (
        "VigilEventLoopBlocked",
        [series("vigil_event_loop_silent_seconds", W1, "0 0 15 30 45 60 75 90")],
        "1m",
        [{"instance": W1["instance"]}],
    ),
    "blocked event loop: one slow second": (
        "VigilEventLoopBlocked",
        [series("vigil_event_loop_silent_seconds", W1, "0 12 0x20")],
        "2m",
        [],
    ),
    # the look's age is a saw-tooth of 0-5 s while the broker answers (a look every 5 s)
    "broker unreachable": (
        "VigilBrokerUnreachable",
        [
            series("vigil_broker_look_age_seconds", W1, "2 4 15+15x14"),
            series("vigil_broker_look_age_seconds", W2, "2 4 1 3 0 2 4 1 3 0 2 4 1 3 0 2"),
        ],
        "3m",
        [{"instance": W1["instance"]}],
    ),
    "broker unreachable: one look late by 40 s": (
        "VigilBrokerUnreachable",
        [series("vigil_broker_look_age_seconds", W1, "2 4 40 1 3 0 2 4 1 3 0 2 4 1 3 0")],
        "3m",
        [],
    ),
    "worker not ready": (
        "VigilWorkerNotReady",
        [series("vigil_worker_ready", W1, "1 0x20"), series("vigil_worker_ready", W2, "1x20")],
        "4m",
        [{"instance": W1["instance"]}],
    ),
    "worker not ready: while it starts": (
        "VigilWorkerNotReady",
        [series("vigil_worker_ready", W1, "0x6 1x20")],
        "4m",
        [],
    ),
    "redis down": (
        "VigilRedisDown",
        [series("vigil_redis_up", W1, "1 0x20"), series("vigil_redis_up", W2, "1x20")],
        "2m",
        [{"instance": W1["instance"]}],
    ),
    # the dashboard and the MLLP listener once served the workers' gauges at 0 (infra.metrics.WORKER_ONLY)
    "redis down: a 0 from a process that is not a worker": (
        "VigilRedisDown",
        [
            series("vigil_redis_up", WEB, "0x20"),
            series("vigil_redis_up", MLLP, "0x20"),
            series("vigil_redis_up", W1, "1x20"),
        ],
        "4m",
        [],
    ),
    "worker not ready: a 0 from a process that is not a worker": (
        "VigilWorkerNotReady",
        [series("vigil_worker_ready", WEB, "0x20"), series("vigil_worker_ready", W1, "1x20")],
        "4m",
        [],
    ),
    "redis down: a blip": ("VigilRedisDown", [series("vigil_redis_up", W1, "1 0 0 1x20")], "2m", []),
    "scoring behind: the workers' lag adds up": (
        "VigilScoringBehind",
        [
            series("vigil_consumer_lag", {**W1, "topic": RAW}, "6000x50"),
            series("vigil_consumer_lag", {**W2, "topic": RAW}, "6000x50"),
        ],
        "11m",
        [{}],
    ),
    "scoring behind: other topics' lag is not the scoring input's": (
        "VigilScoringBehind",
        [
            series("vigil_consumer_lag", {**W1, "topic": RAW}, "9000x50"),
            series("vigil_consumer_lag", {**W1, "topic": "vigil.scores"}, "50000x50"),
        ],
        "11m",
        [],
    ),
    "timer failing": (
        "VigilTimerFailing",
        [
            series("vigil_timer_failures_total", {**W1, "timer": "alert.escalation"}, "0 0 1 2 3 4 5"),
            series("vigil_timer_failures_total", {**W1, "timer": "drift.flush"}, "0 1 1 1 1 1 1"),
        ],
        "90s",
        [{"instance": W1["instance"], "timer": "alert.escalation"}],
    ),
    "timer failing: failures long ago": (
        "VigilTimerFailing",
        [series("vigil_timer_failures_total", {**W1, "timer": "alert.escalation"}, "0 5 5x60")],
        "15m",
        [],
    ),
    "unreadable alert states": (
        "VigilAlertStatesUnreadable",
        [series("vigil_alert_states_unreadable_total", W1, "0 0 1 2 3")],
        "1m",
        [{}],
    ),
    "unreadable alert states: none for ten minutes": (
        "VigilAlertStatesUnreadable",
        [series("vigil_alert_states_unreadable_total", W1, "0 3 3x60")],
        "15m",
        [],
    ),
    "unreadable windows": (
        "VigilPatientWindowsUnreadable",
        [series("vigil_windows_unreadable_total", W1, "0 0 1 1 1")],
        "1m",
        [{}],
    ),
    "unreadable windows: none for ten minutes": (
        "VigilPatientWindowsUnreadable",
        [series("vigil_windows_unreadable_total", W1, "0 2 2x60")],
        "15m",
        [],
    ),
    # a broken session fails every patient of each batch; a poison patient's inputs, each of its batches
    "models failing": (
        "VigilModelsFailing",
        [
            series("vigil_model_failures_total", {**W1, "error": "RuntimeError"}, "0 0 64+64x40"),
            series("vigil_model_failures_total", {**W2, "error": "RuntimeError"}, "0x42"),
        ],
        "6m",
        [{"instance": W1["instance"], "error": "RuntimeError"}],
    ),
    # the first failure of an error type starts its series at the count (increase() reads 0 there)
    "models failing: the first failures of a new error type": (
        "VigilModelsFailing",
        [series("vigil_model_failures_total", {**W1, "error": "OrtError"}, "_x12 64x100")],
        "9m",
        [{"instance": W1["instance"], "error": "OrtError"}],
    ),
    "models failing: a new error type's failures long ago": (
        "VigilModelsFailing",
        [series("vigil_model_failures_total", {**W1, "error": "OrtError"}, "_x12 64x100")],
        "25m",
        [],
    ),
    "models failing: failures long ago": (
        "VigilModelsFailing",
        [series("vigil_model_failures_total", {**W1, "error": "RuntimeError"}, "0 64 64x100")],
        "20m",
        [],
    ),
    "mixed fleet": (
        "VigilMixedFleet",
        [series("vigil_fleet_configurations", W1, "1 2x70"), series("vigil_fleet_configurations", W2, "1 2x70")],
        "16m",
        [{}],
    ),
    "mixed fleet: a rollout that ends": (
        "VigilMixedFleet",
        [series("vigil_fleet_configurations", W1, "1 2x20 1x50")],
        "16m",
        [],
    ),
    # 1 refused every 15 s: 0.067/s, above the 0.05/s the rule allows
    "dead letters rising": (
        "VigilDeadLettersRising",
        [
            series("vigil_dead_letters_total", {**W1, "reason": "schema"}, "0+1x140"),
            series("vigil_dead_letters_total", {**W1, "reason": "duplicate"}, "0+5x140"),
        ],
        "31m",
        [{"reason": "schema"}],
    ),
    "dead letters: the expected reasons and a trickle": (
        "VigilDeadLettersRising",
        [
            series("vigil_dead_letters_total", {**W1, "reason": "no_open_stay"}, "0+5x140"),
            series("vigil_dead_letters_total", {**W1, "reason": "stay_ended"}, "0+5x140"),
            series("vigil_dead_letters_total", {**W1, "reason": "value_range"}, "0+0.5x140"),
        ],
        "31m",
        [],
    ),
    "mllp down": (
        "VigilMllpDown",
        [series("up", MLLP, "1 0x20")],
        "3m",
        [{"job": MLLP["job"], "instance": MLLP["instance"]}],
    ),
    "mllp: a site without a listener": ("VigilMllpDown", [series("up", W1, "1x20")], "3m", []),
    "mllp stray bytes lost": (
        "VigilMllpStrayBytesLost",
        [
            series("vigil_mllp_unpublished_total", {**MLLP, "what": "stray"}, "0 0 1 1 1"),
            series("vigil_mllp_unpublished_total", {**MLLP, "what": "message"}, "0 0 0 0 0"),
        ],
        "1m",
        [{}],
    ),
    "mllp: messages answered AR only (their senders send them again)": (
        "VigilMllpStrayBytesLost",
        [
            series("vigil_mllp_unpublished_total", {**MLLP, "what": "message"}, "0+1x30"),
            series("vigil_mllp_unpublished_total", {**MLLP, "what": "stray"}, "0x30"),
        ],
        "20m",
        [],
    ),
    "mllp refusing": (
        "VigilMllpRefusing",
        [
            series("vigil_mllp_messages_total", {**MLLP, "ack": "AE"}, "0+1x140"),
            series("vigil_mllp_messages_total", {**MLLP, "ack": "AA"}, "0+10x140"),
        ],
        "31m",
        [{}],
    ),
    "mllp: accepted messages only": (
        "VigilMllpRefusing",
        [series("vigil_mllp_messages_total", {**MLLP, "ack": "AA"}, "0+10x140")],
        "31m",
        [],
    ),
    "ward drifted": (
        "VigilWardInputsDrifted",
        [
            series("vigil_drift_drifted", {**W1, "ward": "MICU"}, "0 1x300"),
            series("vigil_drift_drifted", {**W2, "ward": "MICU"}, "0x300"),
            series("vigil_drift_drifted", {**W1, "ward": "SICU"}, "0x300"),
        ],
        "62m",
        [{"ward": "MICU"}],
    ),
    "ward drifted: for less than an hour": (
        "VigilWardInputsDrifted",
        [series("vigil_drift_drifted", {**W1, "ward": "MICU"}, "0 1x200 0x100")],
        "62m",
        [],
    ),
    "dashboard down": ("VigilDashboardDown", [series("up", WEB, "1 0x20")], "3m", [{}]),
    "dashboard never scraped": ("VigilDashboardDown", [series("up", W1, "1x20")], "3m", [{"job": "vigil-web"}]),
    "dashboard up": ("VigilDashboardDown", [series("up", WEB, "1x20")], "3m", []),
    "dashboard feed behind": (
        "VigilDashboardFeedBehind",
        [
            series("vigil_web_feed_lag", {**WEB, "topic": "vigil.scores"}, "600x40"),
            series("vigil_web_feed_lag", {**WEB, "topic": "vigil.alerts"}, "600x40"),
        ],
        "6m",
        [{}],
    ),
    "dashboard feed: a burst it catches up with": (
        "VigilDashboardFeedBehind",
        [series("vigil_web_feed_lag", {**WEB, "topic": "vigil.scores"}, "5000x8 0x40")],
        "6m",
        [],
    ),
}


def promtool_tests(cases: dict[str, Case]) -> dict[str, Any]:
    tests = []
    for name, (alert, inputs, at, firing) in cases.items():
        tests.append(
            {
                "name": name,
                "interval": "15s",
                "input_series": inputs,
                "alert_rule_test": [
                    {"eval_time": at, "alertname": alert, "exp_alerts": [expected(alert, lab) for lab in firing]}
                ],
            }
        )
    return {"rule_files": [str(RULES)], "evaluation_interval": "15s", "tests": tests}


def run_promtool(tmp_path: Path, cases: dict[str, Case]) -> subprocess.CompletedProcess[str]:
    spec = tmp_path / "vigil-alerts.test.yml"
    spec.write_text(yaml.safe_dump(promtool_tests(cases), sort_keys=False))
    return subprocess.run(
        [promtool(), "test", "rules", str(spec)], capture_output=True, text=True, timeout=120, check=False
    )


def test_every_alert_has_an_incident_and_a_quiet_case() -> None:
    firing = {alert for alert, _, _, alerts in CASES.values() if alerts}
    quiet = {alert for alert, _, _, alerts in CASES.values() if not alerts}
    assert firing == quiet == set(rules_by_name())


def test_the_rules_page_for_their_incidents_and_only_them(tmp_path: Path) -> None:
    done = run_promtool(tmp_path, CASES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_rule_that_misses_its_incident_fails_here(tmp_path: Path) -> None:
    """The check can fail: an incident where the rules stay quiet, and a healthy fleet where one is
    expected to page, are both reported by promtool."""
    alert, inputs, at, _ = CASES["stalled partition"]
    quiet, _, _, _ = CASES["redis down: a blip"]
    done = run_promtool(
        tmp_path,
        {
            "expects nothing of a stall": (alert, inputs, at, []),
            "expects a page for a blip": (quiet, CASES["redis down: a blip"][1], "2m", [{"instance": W1["instance"]}]),
        },
    )
    assert done.returncode != 0
    assert "expects nothing of a stall" in done.stdout + done.stderr
    assert "expects a page for a blip" in done.stdout + done.stderr


def test_the_prometheus_config_and_rules_load(tmp_path: Path) -> None:
    """prometheus.yml as compose mounts it (/etc/prometheus, compose's CA as a secret), its paths
    pointed at this checkout: ``promtool check config`` also checks the rule files it names."""
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config["rule_files"] = [str(RULES)]
    ca = tmp_path / "tls_ca"
    ca.write_text("")
    config["scrape_configs"][-1]["tls_config"]["ca_file"] = str(ca)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [promtool(), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules_by_name())} rules found" in done.stdout
