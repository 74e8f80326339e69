"""A worker's timers and tasks never raise into Faust, which crashes the whole worker for it (a timer
raising once ended a probe app with exit 1): ``agents.guard.guarded``, applied by ``VigilApp`` to
every timer, task and crontab it registers."""

from __future__ import annotations

import asyncio
import importlib

import pytest

from vigil.agents import guard
from vigil.agents.app import VigilApp
from vigil.agents.health import AgentHealth
from vigil.infra import metrics


def failures(name: str) -> float:
    return metrics.TIMER_FAILURES.labels(name)._value.get()


def test_a_failing_timer_is_logged_counted_and_runs_again(monkeypatch: pytest.MonkeyPatch) -> None:
    health = AgentHealth()
    monkeypatch.setattr(guard, "AGENTS", health)
    calls: list[int] = []

    @guard.guarded("test.timer")
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
    monkeypatch.setattr(guard, "AGENTS", health)

    @guard.guarded("test.transient")
    async def tick() -> None:
        raise ConnectionError("the broker is away")

    before = failures("test.transient")
    for _ in range(5):
        asyncio.run(tick())
    assert health.ok()  # readiness already reports the broker or Redis away
    assert failures("test.transient") == before  # and their alerts: not a timer's failure


def test_a_cancel_still_stops_it() -> None:
    @guard.guarded("test.cancel")
    async def tick() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(tick())


def test_guarding_twice_keeps_the_first_guard() -> None:
    async def tick() -> None:
        raise KeyError("a bug")

    once = guard.guarded("test.first")(tick)
    assert guard.guarded("test.second")(once) is once and guard.guard_name(once) == "test.first"


def bare_app() -> VigilApp:
    """A Vigil app of its own (never started: nothing connects), so the worker's app stays as it is."""
    return VigilApp("vigil-test-guard", broker="kafka://127.0.0.1:9", autodiscover=False, web_enabled=False)


def test_the_apps_timer_runs_on_after_a_tick_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the app's guard the exception leaves Faust's timer loop, and Faust stops the worker."""
    monkeypatch.setattr(guard, "AGENTS", AgentHealth())
    app = bare_app()
    calls: list[int] = []

    @app.timer(interval=0.02)
    async def breaks_each_time() -> None:
        calls.append(1)
        raise KeyError("a bug")

    name = "test_guarded_timer.breaks_each_time"  # <module>.<function>: no name was given
    before = failures(name)

    async def run_for_a_while() -> None:
        loop = asyncio.ensure_future(app._app_tasks[-1]())
        await asyncio.sleep(0.3)
        assert not loop.done(), loop.exception()  # still looping: the exception did not end it
        loop.cancel()

    asyncio.run(run_for_a_while())
    assert len(calls) >= 3 and failures(name) == before + len(calls)


def test_the_apps_task_and_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard, "AGENTS", AgentHealth())
    app = bare_app()

    @app.task(name="test.named_task")
    async def breaks_once() -> None:
        raise KeyError("a bug")

    @app.task
    async def takes_the_app(given: VigilApp) -> None:  # Faust passes the app to a task that takes one
        assert given is app
        raise ValueError("a bug")

    before_named, before_app = failures("test.named_task"), failures("test_guarded_timer.takes_the_app")
    for task in app._app_tasks[-2:]:
        asyncio.run(task())  # does not raise
    assert failures("test.named_task") == before_named + 1
    assert failures("test_guarded_timer.takes_the_app") == before_app + 1


def test_every_timer_and_task_of_the_worker_is_guarded() -> None:
    """All of ``vigil worker``'s modules imported: each function the app starts carries a guard."""
    from vigil.agents.app import app
    from vigil.agents.loop import register_beat
    from vigil.cli.worker import AGENT_MODULES

    for name in (*AGENT_MODULES, "lag", "fleet"):
        importlib.import_module(f"vigil.agents.{name}")
    register_beat()
    names = {guard.guard_name(task) for task in app._app_tasks}
    assert None not in names
    assert {"consumer.lag", "drift.flush", "fleet.announce", "alert.escalation", "loop.loop_beat"} <= names
