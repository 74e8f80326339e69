"""The readiness state names each cause of a worker not being ready apart (infra/health.py): a
stalled partition, a blocked or stopping event loop and a crash-looping agent call for different
remedies, and one ``agents_ok`` for all three sent the reader of a flaky test's health file after
the wrong one. ``ready`` reads as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog
from prometheus_client import REGISTRY

from vigil.infra import health
from vigil.infra.settings import Settings


@pytest.fixture
def redis_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "redis_ping", lambda settings: lambda: True)


@pytest.mark.parametrize("cause", ["agents_ok", "partitions_ok", "loop_ok"])
def test_each_cause_is_named_in_the_state_and_the_log_line(redis_answers: None, cause: str) -> None:
    answers = {"agents_ok": True, "partitions_ok": True, "loop_ok": True}
    probe = health.ReadinessProbe(Settings(), **{name: (lambda name=name: answers[name]) for name in answers})
    assert probe.check()["ready"] is True
    answers[cause] = False
    with structlog.testing.capture_logs() as logs:
        state = probe.check()
    assert state["ready"] is False and state["redis"] is True and state["store_ok"] is True
    assert {name: state[name] for name in answers} == answers  # the one that failed, and only it
    (line,) = logs
    assert line["event"] == "worker.readiness" and {name: line[name] for name in answers} == answers


def test_the_health_file_holds_every_cause(redis_answers: None, tmp_path: Path) -> None:
    probe = health.ReadinessProbe(Settings(health_file=tmp_path / "health.json"), loop_ok=lambda: False)
    probe._write(probe.check())
    written = health.read_health_file(tmp_path / "health.json")
    assert written is not None and written["ready"] is False
    assert {k: written[k] for k in ("redis", "store_ok", "agents_ok", "partitions_ok", "loop_ok")} == {
        "redis": True,
        "store_ok": True,
        "agents_ok": True,
        "partitions_ok": True,
        "loop_ok": False,
    }
    json.dumps(written)  # as /readyz serves it


def test_the_ready_gauge_counts_every_cause(redis_answers: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "_once_per_scrape", lambda ping: ping)
    answers = {"agents_ok": True, "partitions_ok": True, "loop_ok": True}
    health.export_readiness(Settings(), lambda: True, **{name: (lambda name=name: answers[name]) for name in answers})
    for cause in answers:
        assert REGISTRY.get_sample_value("vigil_worker_ready") == 1.0
        answers[cause] = False
        assert REGISTRY.get_sample_value("vigil_worker_ready") == 0.0
        assert REGISTRY.get_sample_value("vigil_redis_up") == 1.0  # Redis is not the cause
        answers[cause] = True
