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


class _StartingChild:
    """A Popen whose child is visible before Popen returns, when the SIGTERM comes (a CI job
    cancelled just as `vigil replay` started its worker)."""

    started: list[_StartingChild] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.returncode: int | None = None
        self.signals: list[int] = []
        _StartingChild.started.append(self)
        os.kill(os.getpid(), signal.SIGTERM)  # arrives inside Popen, after the fork

    def poll(self) -> int | None:
        return self.returncode

    def send_signal(self, signum: int) -> None:
        self.signals.append(signum)
        self.returncode = -signum

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode


def test_a_signal_while_a_worker_starts_stops_that_worker_too(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Raised inside Popen, the interrupt would leave a worker no ``finally`` can name; held until the
    child is known, it stops that child, then ends the command as Ctrl-C does."""
    from vigil.infra import workers
    from vigil.infra.settings import Settings

    monkeypatch.setattr(workers.subprocess, "Popen", _StartingChild)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="SIGTERM"), stop_on_signals():
        workers.spawn_worker(Settings(home=tmp_path), tmp_path / "w.log")
    (child,) = _StartingChild.started
    assert child.signals == [signal.SIGTERM]  # stop_worker: the worker got its SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before
