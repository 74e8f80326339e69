"""Readiness follows the agents: a crash loop or a batch that cannot finish makes a worker not ready."""

from __future__ import annotations

from tests.conftest import FakeClock as Clock
from vigil.agents.health import CRASH_LIMIT, CRASH_WINDOW_S, STALL_AFTER_S, AgentHealth
from vigil.infra.health import ReadinessProbe
from vigil.infra.settings import Settings


def test_crash_loop_window() -> None:
    clock = Clock()
    health = AgentHealth(clock)
    for _ in range(CRASH_LIMIT - 1):
        health.crashed("ingest")
    assert health.ok()  # one restart is Faust doing its job
    health.crashed("ingest")
    assert health.problems() == {"ingest": "crash_loop"}
    clock.now += CRASH_WINDOW_S + 1
    assert health.ok()


def test_retrying_becomes_stalled_and_finishing_clears_it() -> None:
    clock = Clock()
    health = AgentHealth(clock)
    health.retrying("alert")
    assert health.ok()  # a short broker or Redis hiccup: retried quietly
    clock.now += STALL_AFTER_S
    assert health.problems() == {"alert": "stalled"}
    health.finished("alert")
    health.blocked("treat")
    assert health.problems() == {"treat": "blocked"}
    health.finished("treat")
    assert health.ok()


def test_probe_reports_agents(monkeypatch) -> None:
    agents_ok = {"value": True}
    probe = ReadinessProbe(Settings(), agents_ok=lambda: agents_ok["value"])
    monkeypatch.setattr(probe, "_ping", lambda: True)
    assert probe.check()["ready"] is True
    agents_ok["value"] = False
    state = probe.check()
    assert state["ready"] is False and state["agents_ok"] is False and state["redis"] is True
