"""SIGTERM and SIGHUP end a command that started workers like Ctrl-C (``cli.signals.stop_on_signals``):
its ``finally`` blocks run and stop the workers, which a signal to the command never reaches."""

from __future__ import annotations

import os
import signal

import pytest

from vigil.cli.signals import stop_on_signals


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_runs_the_finally_blocks_and_the_handlers_come_back(signum: signal.Signals) -> None:
    before = signal.getsignal(signum)
    stopped = []
    with pytest.raises(KeyboardInterrupt, match=signum.name), stop_on_signals():
        try:
            os.kill(os.getpid(), signum)
        finally:
            stopped.append("worker")  # what stop_worker(worker) stands for in the commands
    assert stopped == ["worker"]
    assert signal.getsignal(signum) == before
