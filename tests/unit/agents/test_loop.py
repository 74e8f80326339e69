"""Whether the worker's event loop runs (agents/loop.py): a loop that stops beating makes the worker
not ready, logs where it is stuck once, and ends the worker at the exit time."""

from __future__ import annotations

import threading
import time

from tests.conftest import FakeClock as Clock
from vigil.agents.loop import BLOCKED_AFTER_S, LoopBeat, LoopWatch, Verdict, loop_stack


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
