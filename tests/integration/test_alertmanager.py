"""deploy/prometheus/alertmanager.yml on a real Alertmanager (Debian's prometheus-alertmanager): the
config loads (amtool), and the alerts of one failure sent to the server reach the receiver their
severity routes to, once, while the alerts that failure causes are held back (inhibited) and never
reach anyone. Only the receivers' addresses (a webhook server here) and the grouping waits (1 s) are
changed from the shipped file; the routes and the inhibit rules are tested as shipped."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pytest
import yaml

from tests.conftest import prometheus_server, wait_for
from vigil.infra.ports import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
ALERTMANAGER = REPO / "deploy" / "prometheus" / "alertmanager.yml"
RULES = REPO / "deploy" / "prometheus" / "vigil-alerts.yml"
W1, W2 = "worker-1:9100", "worker-2:9100"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: install Debian's prometheus-alertmanager package (make system-deps)")
    return found


def severities() -> dict[str, str]:
    doc = yaml.safe_load(RULES.read_text())
    return {r["alert"]: r["labels"]["severity"] for g in doc["groups"] for r in g["rules"]}


class Webhook:
    """Alertmanager's notifications as they arrive: (path, alertname, instance, status)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, str, str]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                for alert in body["alerts"]:
                    labels = alert["labels"]
                    hook.received.append((self.path, labels["alertname"], labels.get("instance", ""), alert["status"]))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def names(self) -> set[tuple[str, str, str]]:
        return {(path, name, instance) for path, name, instance, _ in self.received}


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[str, Webhook]]:
    hook = Webhook()
    config = yaml.safe_load(ALERTMANAGER.read_text())
    for receiver in config["receivers"]:
        for webhook in receiver["webhook_configs"]:
            webhook["url"] = hook.url + webhook["url"].split(":8080", 1)[1]  # the same paths, served here
    config["route"].update(group_wait="1s", group_interval="1s")
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
    args = [
        f"--config.file={tmp_path / 'alertmanager.yml'}",
        f"--storage.path={tmp_path / 'data'}",
        "--cluster.listen-address=",  # one server, no cluster
    ]
    try:
        with prometheus_server("prometheus-alertmanager", args, free_port(), tmp_path / "alertmanager.log") as url:
            yield url, hook
    finally:
        hook.server.shutdown()


def send(url: str, alerts: list[tuple[str, str, dict[str, str]]]) -> None:
    """(alertname, instance or "", other labels), each with its severity from vigil-alerts.yml, as
    Prometheus sends them."""
    severity = severities()
    now = datetime.now(UTC)
    body = [
        {
            "labels": {"alertname": name, "severity": severity[name], **({"instance": inst} if inst else {}), **extra},
            "annotations": {"summary": name},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=5)).isoformat(),
        }
        for name, inst, extra in alerts
    ]
    request = Request(
        f"{url}/api/v2/alerts", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urlopen(request, timeout=10) as reply:
        assert reply.status == 200


def states(url: str) -> dict[tuple[str, str], dict[str, Any]]:
    with urlopen(f"{url}/api/v2/alerts", timeout=10) as reply:
        alerts = json.load(reply)
    return {(a["labels"]["alertname"], a["labels"].get("instance", "")): a["status"] for a in alerts}


def test_the_shipped_config_loads() -> None:
    done = subprocess.run(
        [tool("amtool"), "check-config", str(ALERTMANAGER)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr
    assert "6 inhibit rules" in done.stdout and "2 receivers" in done.stdout


def test_redis_away_pages_once_for_redis_and_holds_back_what_it_causes(alertmanager) -> None:  # type: ignore[no-untyped-def]
    url, hook = alertmanager
    send(
        url,
        [
            ("VigilRedisDown", W1, {}),
            ("VigilWorkerNotReady", W1, {}),  # caused by Redis: held back
            ("VigilPartitionStalled", W1, {"topic": "vigil.events.raw"}),  # caused by Redis: held back
            ("VigilScoringBehind", "", {}),  # the fleet's: one worker's Redis does not hold it back
            ("VigilWorkerNotReady", W2, {}),  # another worker, not Redis': pages
            ("VigilDeadLettersRising", "", {"reason": "schema"}),  # a warning: the team's queue
        ],
    )
    expected = {
        ("/vigil/critical", "VigilRedisDown", W1),
        ("/vigil/critical", "VigilWorkerNotReady", W2),
        ("/vigil/warning", "VigilScoringBehind", ""),
        ("/vigil/warning", "VigilDeadLettersRising", ""),
    }
    assert wait_for(lambda: hook.names() >= expected, timeout=30), hook.received
    now = states(url)
    for held in (("VigilWorkerNotReady", W1), ("VigilPartitionStalled", W1)):
        assert now[held]["state"] == "suppressed" and now[held]["inhibitedBy"], (held, now[held])
    assert now[("VigilWorkerNotReady", W2)]["state"] == "active"
    # a few group intervals on: still only those, each to the receiver its severity names
    time.sleep(3)
    assert hook.names() == expected, hook.received


def test_a_blocked_event_loop_holds_back_the_broker_and_readiness_alerts_of_its_worker(alertmanager) -> None:  # type: ignore[no-untyped-def]
    url, hook = alertmanager
    send(
        url,
        [
            ("VigilEventLoopBlocked", W1, {}),
            ("VigilBrokerUnreachable", W1, {}),  # the look at the broker runs on the blocked loop
            ("VigilWorkerNotReady", W1, {}),
            ("VigilBrokerUnreachable", W2, {}),  # worker-2 cannot reach the broker itself: pages
        ],
    )
    expected = {("/vigil/critical", "VigilEventLoopBlocked", W1), ("/vigil/critical", "VigilBrokerUnreachable", W2)}
    assert wait_for(lambda: hook.names() >= expected, timeout=30), hook.received
    time.sleep(3)
    assert hook.names() == expected, hook.received
