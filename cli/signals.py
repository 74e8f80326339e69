"""SIGTERM and SIGHUP end a command that started workers the way Ctrl-C does, so that its ``finally``
blocks stop them: the workers run in their own session (``infra.workers.spawn_worker``), and a signal
to the command (``timeout``, a CI job cancelled, a closed terminal) never reaches them."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside the block SIGTERM and SIGHUP raise ``KeyboardInterrupt``; the handlers before it come back after."""

    def interrupt(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
