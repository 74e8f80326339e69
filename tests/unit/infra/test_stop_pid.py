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


# a node that, once told to stop, waits for its peer to be told too (a KRaft node's controlled
# shutdown needs the controller quorum the others keep), then exits; killed if it is never told
_QUORUM_NODE = (
    "import pathlib, signal, sys, time\n"
    "me, peer = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])\n"
    "def stop(*_):\n"
    "    me.touch()\n"
    "    while not peer.exists():\n"
    "        time.sleep(0.05)\n"
    "    sys.exit(0)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "print('up', flush=True)\n"
    "time.sleep(60)"
)


def test_a_clusters_nodes_are_stopped_together_not_one_by_one(tmp_path: Path) -> None:
    """Stopped one by one, the first node waits for a peer that is not told to stop yet, and is
    SIGKILLed at the timeout (a three-node ``vigil stack down`` took ~27 s, a node killed unclean);
    stopped together, each exits on its own."""
    told = [tmp_path / "told-0", tmp_path / "told-1"]
    nodes = [
        subprocess.Popen(  # noqa: S603 - node stand-ins
            [sys.executable, "-c", _QUORUM_NODE, str(told[i]), str(told[1 - i])], stdout=subprocess.PIPE
        )
        for i in range(2)
    ]
    pid_files = []
    for i, node in enumerate(nodes):
        assert node.stdout is not None and node.stdout.readline() == b"up\n"
        pid_files.append(tmp_path / f"node-{i}.pid")
        pid_files[-1].write_text(str(node.pid))
    assert processes.stop_pids(pid_files, timeout_s=5) is True
    assert [node.wait(10) for node in nodes] == [0, 0]  # neither SIGKILLed
    assert not any(f.exists() for f in pid_files)
    assert processes.stop_pids(pid_files) is False  # nothing running: nothing to stop
