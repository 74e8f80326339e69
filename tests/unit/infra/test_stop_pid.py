"""``stop_pid`` on a server this process started itself (a test's stack, the demo's): once it has
exited on SIGTERM it is a zombie until reaped, and a zombie still answers signal 0. The stop must
see it has ended, not wait out its timeout and SIGKILL it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from vigil.infra.stack import processes


def test_a_child_that_exits_on_sigterm_is_not_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    child = subprocess.Popen(  # noqa: S603 - a server stand-in that exits on SIGTERM
        [
            sys.executable,
            "-c",
            "import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
            "print('up', flush=True)\ntime.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdout.readline() == b"up\n"  # its handler is set
    pid_file = tmp_path / "server.pid"
    pid_file.write_text(str(child.pid))
    sent: list[int] = []
    real_kill = os.kill

    def kill(pid: int, sig: int) -> None:
        sent.append(sig)
        real_kill(pid, sig)

    monkeypatch.setattr(processes.os, "kill", kill)
    assert processes.stop_pid(pid_file, timeout_s=3) is True
    assert signal.SIGKILL not in sent, sent
    assert not pid_file.exists()
    assert processes.exited(child.pid)


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    child = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-c",
            "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "print('up', flush=True)\ntime.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdout.readline() == b"up\n"
    pid_file = tmp_path / "server.pid"
    pid_file.write_text(str(child.pid))
    assert processes.stop_pid(pid_file, timeout_s=1) is True
    assert child.wait(10) == -signal.SIGKILL
