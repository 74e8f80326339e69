"""A worker's timers never raise into Faust, which crashes the whole worker for it (a timer raising
once ended a probe app with exit 1): ``agents.runtime.guarded``."""

from __future__ import annotations

import asyncio

import pytest

from vigil.agents import runtime
from vigil.agents.health import AgentHealth
from vigil.infra import metrics


def failures(name: str) -> float:
    return metrics.TIMER_FAILURES.labels(name)._value.get()


def test_a_failing_timer_is_logged_counted_and_runs_again(monkeypatch: pytest.MonkeyPatch) -> None:
    health = AgentHealth()
    monkeypatch.setattr(runtime, "AGENTS", health)
    calls: list[int] = []

    @runtime.guarded("test.timer")
    async def tick() -> None:
        calls.append(1)
        raise KeyError("a bug")

    before = failures("test.timer")
    for _ in range(3):
        asyncio.run(tick())  # does not raise
    assert len(calls) == 3 and failures("test.timer") == before + 3
    assert health.problems() == {"test.timer": "crash_loop"}  # three within five minutes: not ready


def test_a_transient_failure_is_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    health = AgentHealth()
    monkeypatch.setattr(runtime, "AGENTS", health)

    @runtime.guarded("test.transient")
    async def tick() -> None:
        raise ConnectionError("the broker is away")

    for _ in range(5):
        asyncio.run(tick())
    assert health.ok()  # readiness already reports the broker or Redis away


def test_a_cancel_still_stops_it() -> None:
    @runtime.guarded("test.cancel")
    async def tick() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(tick())
