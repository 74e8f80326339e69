"""The alerting rules and the Prometheus set-up compose ships (deploy/prometheus): every expression
parses as PromQL and names only metrics Vigil exports, every alert says how bad and where its
runbook is, and the scrape targets are the ports compose's services serve /metrics on."""

from __future__ import annotations

import re
from pathlib import Path

import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY

import vigil.agents.web.metrics  # noqa: F401  registers the dashboard's vigil_web_* metrics
import vigil.infra.metrics  # noqa: F401

REPO = Path(__file__).parents[3]
PROMETHEUS = REPO / "deploy" / "prometheus"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}


def rules() -> list[dict]:  # type: ignore[type-arg]
    doc = yaml.safe_load((PROMETHEUS / "vigil-alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def exported() -> set[str]:
    """Every series name Vigil's registry exposes: gauges by name, counters and histograms with theirs."""
    names: set[str] = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("vigil_"):
            continue
        names.add(family.name)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ()))
    return names


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_each_rule_parses_and_names_only_exported_metrics(rule: dict) -> None:  # type: ignore[type-arg]
    promql_parser.parse(rule["expr"])  # raises on a syntax error
    named = set(re.findall(r"\bvigil_[a-z0-9_]+", rule["expr"]))
    assert named or re.search(r"\bup\{", rule["expr"]), "a rule reads a Vigil metric, or whether a target is up"
    assert named <= exported(), f"not exported by Vigil: {sorted(named - exported())}"


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["alert"])
def test_each_alert_says_how_bad_and_where_its_runbook_is(rule: dict) -> None:  # type: ignore[type-arg]
    assert re.fullmatch(r"Vigil[A-Z][A-Za-z]+", rule["alert"])
    assert rule["labels"]["severity"] in ("critical", "warning")
    assert rule["annotations"]["summary"]
    runbook = re.search(r"docs/[a-z]+\.md", rule["annotations"]["description"])
    assert runbook and (REPO / runbook.group(0)).exists()
    for doc, section in re.findall(r'(docs/[a-z]+\.md), "([^"]+)"', rule["annotations"]["description"]):
        headings = re.findall(r"^#+ (.+)$", (REPO / doc).read_text(), flags=re.MULTILINE)
        assert any(h.startswith(section) for h in headings), f'{doc} has no section "{section}"'
    if "for" in rule:
        assert re.fullmatch(r"\d+[smh]", rule["for"])


def test_a_misspelt_metric_is_caught() -> None:
    assert "vigil_consumer_stalled_partitions" in exported()
    assert "vigil_consumer_stalled_partition" not in exported()
    with pytest.raises(ValueError):
        promql_parser.parse("max by (instance (vigil_event_loop_silent_seconds) > 10")


def test_prometheus_scrapes_what_compose_serves_and_loads_the_rules() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    worker = services["worker"]
    port = worker["command"][worker["command"].index("--metrics-port") + 1]
    assert worker["environment"]["VIGIL_METRICS_HOST"] == "0.0.0.0"  # not its own loopback only
    (sd,) = jobs["vigil-worker"]["dns_sd_configs"]
    assert sd["names"] == ["worker"] and str(sd["port"]) == port  # every replica

    mllp = services["mllp"]
    port = mllp["command"][mllp["command"].index("--metrics-port") + 1]
    assert mllp["environment"]["VIGIL_METRICS_HOST"] == "0.0.0.0"
    assert jobs["vigil-mllp"]["static_configs"][0]["targets"] == [f"mllp:{port}"]

    web = services["web"]
    assert jobs["vigil-web"]["static_configs"][0]["targets"] == [f"web:{web['command'][-1]}"]
    assert jobs["vigil-web"]["scheme"] == "https"

    prometheus = services["prometheus"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert config["rule_files"] == ["/etc/prometheus/vigil-alerts.yml"]
    assert prometheus["profiles"] == ["monitoring"]  # only when asked for
    assert "tls_ca" in prometheus["secrets"]

    # its alerts go to compose's Alertmanager, with the config the tests check (test_alertmanager.py)
    (am,) = config["alerting"]["alertmanagers"]
    assert am["static_configs"][0]["targets"] == ["alertmanager:9093"]
    alertmanager = services["alertmanager"]
    assert alertmanager["profiles"] == ["monitoring"] and "alertmanager" in prometheus["depends_on"]
    assert "./deploy/prometheus/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in alertmanager["volumes"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in alertmanager["command"]
    assert alertmanager["ports"] == ["127.0.0.1:9093:9093"]  # the host's loopback only
