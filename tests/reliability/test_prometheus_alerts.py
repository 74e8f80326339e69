"""deploy/prometheus's rules on a real Prometheus server (Debian's prometheus) scraping a real
worker: the worker's /metrics is read, every rule evaluates without an error on its series, the
series the worker-side rules select exist with the labels they name, nothing pages for a healthy
worker (ready, its look at the broker fresh), and the incidents the rules are for reach Prometheus:
the worker's event loop blocked (tests/reliability/faults) makes VigilEventLoopBlocked pending and
vigil_worker_ready 0, the worker gone VigilNoWorkerUp.
(Pending, not firing: their ``for`` is 30 s and 1 min; when they fire is promtool's test,
tests/unit/infra/test_alert_rules_promtool.py.)"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from urllib.request import urlopen

import pytest
import yaml

from tests.conftest import prometheus_server, wait_for
from tests.reliability.helpers import report
from vigil.infra.ports import free_port
from vigil.infra.workers import EXIT_LEFT_GROUP

pytestmark = pytest.mark.reliability

REPO = Path(__file__).parents[2]
RULES = REPO / "deploy" / "prometheus" / "vigil-alerts.yml"
FAULTS = Path(__file__).parent / "faults"
# what the worker-side rules select, as a live worker must export it (job and instance from the scrape)
WORKER_SERIES = (
    'vigil_event_loop_silent_seconds{job="vigil-worker"}',
    'vigil_redis_up{job="vigil-worker"}',
    'vigil_consumer_stalled_partitions{job="vigil-worker",topic="vigil.events.raw"}',
    'vigil_consumer_lag{job="vigil-worker",topic="vigil.events.raw"}',
    'vigil_fleet_configurations{job="vigil-worker"}',
    'vigil_alert_states_unreadable_total{job="vigil-worker"}',
    'vigil_worker_ready{job="vigil-worker"}',
    'vigil_broker_look_age_seconds{job="vigil-worker"}',
)
PAGES_FOR_A_WORKER = (
    "VigilNoWorkerUp",
    "VigilPartitionStalled",
    "VigilEventLoopBlocked",
    "VigilRedisDown",
    "VigilBrokerUnreachable",
    "VigilWorkerNotReady",
)


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> Any:
        with urlopen(f"{self.url}/api/v1/{path}?{urlencode(params)}", timeout=10) as reply:
            return json.load(reply)["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def alerts(self) -> dict[str, str]:
        """alertname -> state (pending or firing), of the alerts active now."""
        return {a["labels"]["alertname"]: a["state"] for a in self.api("alerts")["alerts"]}


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[Prometheus, int]]:
    """A Prometheus server scraping the port it yields every second as compose's vigil-worker job,
    evaluating the shipped rules every second."""
    worker_port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "vigil-worker", "static_configs": [{"targets": [f"127.0.0.1:{worker_port}"]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    args = [f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}"]
    with prometheus_server("prometheus", args, free_port(), tmp_path / "prometheus.log") as url:
        yield Prometheus(url), worker_port


def test_prometheus_reads_a_live_worker_and_its_rules_see_the_incidents(
    prometheus: tuple[Prometheus, int], started_worker, tmp_path: Path, results_dir: Path
) -> None:
    server, port = prometheus
    flag = tmp_path / "block"
    worker = started_worker(
        "prom",
        {
            "VIGIL_METRICS_PORT": str(port),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(FAULTS), os.environ.get("PYTHONPATH")])),
            "VIGIL_TEST_BLOCK_LOOP_FLAG": str(flag),
            "VIGIL_WATCHDOG__STALL_AFTER_S": "20",
            "VIGIL_WATCHDOG__EXIT_AFTER_S": "25",  # alive past the alert's 10 s, then it ends itself
        },
    )

    def scraped() -> bool:
        targets = server.api("targets")["activeTargets"]
        return any(t["labels"]["job"] == "vigil-worker" and t["health"] == "up" for t in targets)

    assert wait_for(scraped, timeout=30), server.api("targets")
    # every rule evaluates on the live series without an error
    assert wait_for(lambda: all(r.get("lastEvaluation", "").startswith("20") for r in _rules(server)), timeout=15)
    rules = _rules(server)
    assert len(rules) == len(_shipped_alerts())
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
    for expr in WORKER_SERIES:
        assert wait_for(lambda e=expr: server.query(e), timeout=15), f"no series {expr} from the live worker"
    assert not set(PAGES_FOR_A_WORKER) & set(server.alerts()), server.alerts()  # a healthy worker pages nobody
    assert server.query('vigil_worker_ready{job="vigil-worker"} == 1')  # ready, as its /readyz says
    assert server.query('vigil_broker_look_age_seconds{job="vigil-worker"} < 15')  # a look every 5 s
    # its event loop blocked: the metrics thread still answers, its silence rises past 10 s
    # the silence counts from the loop's last 1 s beat, up to a second before it blocked: the alert may
    # go pending a second short of 10 s after the block (9.86 s once, measured from its detection)
    touched_at = time.monotonic()
    flag.touch()
    assert wait_for(lambda: not flag.exists(), timeout=10), "the fault never blocked the loop"
    assert wait_for(lambda: server.alerts().get("VigilEventLoopBlocked") == "pending", timeout=25), server.alerts()
    pending_s = time.monotonic() - touched_at
    assert server.query('vigil_worker_ready{job="vigil-worker"} == 0')  # not ready, the metric as /readyz
    # the worker ends itself (exit 75) and nothing answers the scrape: no worker is up
    assert worker.wait(timeout=60) == EXIT_LEFT_GROUP
    assert wait_for(lambda: server.alerts().get("VigilNoWorkerUp") == "pending", timeout=15), server.alerts()
    assert 9 <= pending_s <= 21, pending_s  # silent > 10 s, its last beat up to 1 s before the block
    report(results_dir, "prometheus_alerts", {"blocked_to_loop_alert_pending_s": round(pending_s, 1)})


def _rules(server: Prometheus) -> list[dict[str, Any]]:
    return [rule for group in server.api("rules")["groups"] for rule in group["rules"]]


def _shipped_alerts() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule["alert"] for group in doc["groups"] for rule in group["rules"]]
