"""Whether the worker's event loop runs. Every agent, timer, commit and the partition watchdog
(agents/progress.py) run on it, while Kafka's heartbeats run in a thread of their own (Faust's
consumer thread): a loop blocked by a call that never returns keeps the worker's partitions in the
group and scores none of their patients, and no code on the loop can notice.

A 1 s timer on the loop beats (``LOOP.beat``) from the app's start to its shutdown; a thread of its
own (``LoopWatch``) reads the beat. Silent for ``BLOCKED_AFTER_S``: the worker is not ready and logs
``worker.loop_blocked`` once, with the loop thread's stack (files, lines and functions; no values),
and ``worker.loop_running`` if it beats again; meanwhile its fleet card counts its partitions as
stalled (the dashboard's header). Silent for
``watchdog.exit_after_s`` (180 s): it logs ``worker.leaving`` and ends at once with exit status 75,
as after ``kill -9`` (offsets cover handled batches only, so the group's other workers read on from
them), for its supervisor to start it again. ``vigil_event_loop_silent_seconds``: seconds since the
last beat, read on each scrape (by the metrics server's thread)."""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

BEAT_EVERY_S = 1.0
# silent this long: not ready, and the loop's stack in the log
BLOCKED_AFTER_S = 10.0


class LoopBeat:
    """When the loop last beat, and on which thread. Before its first beat the loop has not started
    the worker's agents: not ready."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.last: float | None = None
        self.thread_id: int | None = None

    def beat(self) -> None:
        self.last = self._clock()
        self.thread_id = threading.get_ident()

    def silent_for(self) -> float:
        return 0.0 if self.last is None else max(0.0, self._clock() - self.last)

    def ok(self) -> bool:
        return self.last is not None and self.silent_for() < BLOCKED_AFTER_S

    def stop(self) -> None:
        """The worker is stopping: its timers end, and the silence that follows means nothing."""
        self.last = None


@dataclass(frozen=True)
class Verdict:
    blocked: bool  # silent at least BLOCKED_AFTER_S
    newly: bool  # ... and it was not at the last look: log the stack once
    resumed_after_s: float | None  # it beat again after being blocked this long
    leave: bool  # silent at least the exit time


class LoopWatch:
    """The thread's reading of the beat, once a second (pure: ``look`` decides, the thread acts)."""

    def __init__(self, beat: LoopBeat, exit_after_s: float) -> None:
        self.beat = beat
        self.exit_after_s = exit_after_s
        self._blocked_since_last: float | None = None  # the silence at the last look, while blocked

    def look(self) -> Verdict:
        silent = self.beat.silent_for()
        blocked = self.beat.last is not None and silent >= BLOCKED_AFTER_S
        was = self._blocked_since_last
        resumed = was if (was is not None and not blocked) else None
        self._blocked_since_last = silent if blocked else None
        leave = blocked and self.exit_after_s > 0 and silent >= self.exit_after_s
        return Verdict(blocked=blocked, newly=blocked and was is None, resumed_after_s=resumed, leave=leave)


def stop_reason(
    signal_name: str | None, crash: BaseException | None, left_group: bool, uptime_s: float
) -> dict[str, Any]:
    """Why the worker stops, as the fields of its ``worker.stopping`` line. mode logs a signal at
    INFO, below the WARNING Vigil sets its loggers to, and a stop by signal ends without a word: a
    worker that stopped seconds after it started left no trace of why. The watchdog leaves the
    group by a SIGTERM of its own (agents/progress.py): its request is the reason, the signal only
    the means. A crash names its exception's type (its message may hold a patient's values: no)."""
    fields: dict[str, Any] = {"uptime_s": round(uptime_s, 1)}
    if signal_name is not None:
        fields["signal"] = signal_name
    if crash is not None:
        fields["error"] = type(crash).__name__
    if left_group:
        reason = "watchdog"  # partitions stalled with nothing to explain it: start it again (exit 75)
    elif signal_name is not None:
        reason = "signal"  # a supervisor, an operator, Ctrl-C
    elif crash is not None:
        reason = "crash"
    else:
        reason = "stopped"  # the app stopped itself: no signal, no crash
    return {"reason": reason, **fields}


STACK_FRAMES = 20  # the innermost: where the loop is stuck, in a log line of bounded size


def loop_stack(thread_id: int | None) -> list[str]:
    """Where the loop thread is now: ``file:line in function`` per frame, innermost last."""
    frame = sys._current_frames().get(thread_id) if thread_id is not None else None
    if frame is None:
        return []
    return [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_stack(frame)[-STACK_FRAMES:]]


LOOP = LoopBeat()


def register_beat() -> None:
    """The beat on the worker's loop: at once when the app starts, then every second."""
    from vigil.agents.app import app

    @app.task
    async def first_beat() -> None:
        LOOP.beat()

    @app.timer(interval=BEAT_EVERY_S)
    async def loop_beat() -> None:
        LOOP.beat()

    @app.on_before_shutdown.connect
    async def loop_stopping(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        LOOP.stop()


def start_loop_watch(
    exit_after_s: float,
    exit_status: int,
    while_blocked: Callable[[], None] = lambda: None,
    interval_s: float = 1.0,
) -> threading.Thread:
    """The watching thread of ``vigil worker`` (a daemon: it ends with the process).
    ``while_blocked`` is called at each look while the loop is blocked (the worker's fleet card
    says its partitions are not read: ``agents.fleet.blocked_announcer``)."""
    from vigil.infra import metrics
    from vigil.infra.logging import get_logger

    log = get_logger(__name__)
    watch = LoopWatch(LOOP, exit_after_s)
    metrics.EVENT_LOOP_SILENT.set_function(LOOP.silent_for)

    def run() -> None:
        while True:
            time.sleep(interval_s)
            verdict = watch.look()
            if verdict.newly:
                log.error(
                    "worker.loop_blocked",
                    silent_s=round(LOOP.silent_for(), 1),
                    stack=loop_stack(LOOP.thread_id),
                )
            if verdict.blocked:
                while_blocked()
            if verdict.resumed_after_s is not None:
                log.warning("worker.loop_running", blocked_s=round(verdict.resumed_after_s, 1))
            if verdict.leave:
                log.error(
                    "worker.leaving",
                    reason="the event loop has not run for the exit time: its partitions go to the other workers",
                    silent_s=round(LOOP.silent_for(), 1),
                    stack=loop_stack(LOOP.thread_id),
                    exit_code=exit_status,
                )
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(exit_status)  # the loop cannot stop the worker: end as kill -9 would

    thread = threading.Thread(target=run, name="vigil-loop-watch", daemon=True)
    thread.start()
    return thread
