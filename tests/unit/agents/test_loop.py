"""Whether the worker's event loop runs (agents/loop.py): a loop that stops beating makes the worker
not ready, logs where it is stuck once, and ends the worker at the exit time."""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest
import structlog

from tests.conftest import FakeClock as Clock
from vigil.agents.loop import BLOCKED_AFTER_S, LoopBeat, LoopWatch, Verdict, loop_stack, stop_reason


def test_not_ready_before_the_first_beat_and_while_silent() -> None:
    clock = Clock()
    beat = LoopBeat(clock)
    assert not beat.ok()  # the loop has not started the agents yet
    beat.beat()
    clock.now += BLOCKED_AFTER_S - 0.5
    assert beat.ok()
    clock.now += 0.5
    assert not beat.ok() and beat.silent_for() == BLOCKED_AFTER_S
    beat.beat()
    assert beat.ok()
    beat.stop()  # shutting down: not ready, and the silence is not judged
    assert not beat.ok() and beat.silent_for() == 0.0


def test_the_watch_logs_once_reports_the_resumption_and_leaves_at_the_exit_time() -> None:
    clock = Clock()
    beat = LoopBeat(clock)
    watch = LoopWatch(beat, exit_after_s=180.0)
    assert watch.look() == Verdict(False, False, None, False)  # never beat: starting, not blocked
    beat.beat()
    clock.now += BLOCKED_AFTER_S
    assert watch.look() == Verdict(True, True, None, False)
    clock.now += 5
    assert watch.look() == Verdict(True, False, None, False)  # the stack was logged already
    beat.beat()
    assert watch.look() == Verdict(False, False, BLOCKED_AFTER_S + 5, False)
    clock.now += 180
    assert watch.look().leave
    assert not LoopWatch(beat, exit_after_s=0).look().leave  # 0: never
    beat.stop()
    clock.now += 1000
    assert watch.look() == Verdict(False, False, 180.0, False)  # shutting down: never judged


def test_the_stack_names_where_the_loop_thread_is_stuck() -> None:
    release = threading.Event()

    def stuck_in_a_call_that_never_returns() -> None:
        release.wait(10)

    thread = threading.Thread(target=stuck_in_a_call_that_never_returns)
    thread.start()
    try:
        time.sleep(0.1)
        stack = loop_stack(thread.ident)
        assert any(line.endswith("in stuck_in_a_call_that_never_returns") for line in stack), stack
    finally:
        release.set()
        thread.join()
    assert loop_stack(None) == []


def test_the_reason_a_worker_stops_names_its_cause() -> None:
    """mode logs a signal below the level Vigil keeps and ends quietly: this line is the record."""
    assert stop_reason("SIGTERM", None, False, 3.14) == {"reason": "signal", "uptime_s": 3.1, "signal": "SIGTERM"}
    # the watchdog leaves by a SIGTERM of its own: its request is the reason
    assert stop_reason("SIGTERM", None, True, 40.0)["reason"] == "watchdog"
    assert stop_reason(None, KeyError("a patient's id"), False, 2.0) == {
        "reason": "crash",
        "uptime_s": 2.0,
        "error": "KeyError",  # the type only: a message may carry a patient's values
    }
    assert stop_reason("SIGINT", RuntimeError(), False, 1.0)["reason"] == "signal"  # stopped, then crashed in it
    assert stop_reason(None, None, False, 0.5) == {"reason": "stopped", "uptime_s": 0.5}


def _worker() -> Any:
    from vigil.agents.app import app
    from vigil.cli.worker import _structlog_worker_class

    return _structlog_worker_class()(app, loglevel="info", quiet=True, redirect_stdouts=False)


@pytest.fixture
def mode_hooks(monkeypatch: pytest.MonkeyPatch) -> list[signal.Signals]:
    """mode's own signal handling and Faust's shutdown title, recorded instead of run (no loop, no Kafka)."""
    import faust
    import mode

    scheduled: list[signal.Signals] = []
    monkeypatch.setattr(mode.Worker, "_schedule_shutdown", lambda self, sig: scheduled.append(sig))
    monkeypatch.setattr(faust.Worker, "on_worker_shutdown", lambda self: None)
    return scheduled


def test_a_worker_stopped_by_a_signal_says_so_once_as_it_arrives(mode_hooks: list[signal.Signals]) -> None:
    worker = _worker()
    with structlog.testing.capture_logs() as logs:
        worker._schedule_shutdown(signal.SIGTERM)
        assert [(e["event"], e["log_level"], e["reason"], e["signal"]) for e in logs] == [
            ("worker.stopping", "warning", "signal", "SIGTERM")
        ]
        worker.on_worker_shutdown()  # the run ends after it: not a second line
    assert len(logs) == 1 and mode_hooks == [signal.SIGTERM]  # mode still stops it


def test_a_worker_that_crashed_or_stopped_itself_says_so(mode_hooks: list[signal.Signals]) -> None:
    crashed = _worker()
    crashed.crash_reason = ValueError("from an agent")
    escaping = _worker()
    stopped = _worker()
    with structlog.testing.capture_logs() as logs:
        crashed.on_worker_shutdown()
        try:
            try:
                raise OSError("out of the run")
            finally:  # as mode's execute_from_commandline calls it
                escaping.on_worker_shutdown()
        except OSError:
            pass
        stopped.on_worker_shutdown()
    assert [(e["event"], e["reason"], e.get("error")) for e in logs] == [
        ("worker.stopping", "crash", "ValueError"),
        ("worker.stopping", "crash", "OSError"),
        ("worker.stopping", "stopped", None),
    ]
