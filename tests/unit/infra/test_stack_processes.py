"""The embedded stack's pid files name one process, and its start and stop take turns."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from vigil.infra.stack.processes import pid_alive, stack_lock, start_daemon, stop_pid


def test_a_pid_file_naming_another_process_is_stale_and_nothing_is_signalled(tmp_path: Path) -> None:
    """After a crash or a reboot the pid in the file may be another process of the same user:
    ``stack down`` SIGTERMed it, then SIGKILLed it."""
    pid_file = tmp_path / "kafka.pid"
    server = start_daemon(["sleep", "30"], None, pid_file)
    victim = subprocess.Popen(["sleep", "30"])
    try:
        assert pid_alive(pid_file) == server.pid
        assert len(pid_file.read_text().split()) == 2  # pid and start time
        pid_file.write_text(f"{victim.pid} 1")  # the victim's pid, a process started 1 tick after boot
        assert pid_alive(pid_file) is None
        assert stop_pid(pid_file) is False and victim.poll() is None  # left alone
        pid_file.write_text(str(victim.pid))  # a file of an older version: the pid alone, taken at its word
        assert pid_alive(pid_file) == victim.pid
    finally:
        for p in (server, victim):
            p.kill()
            p.wait()


def test_starts_and_stops_of_one_home_take_turns(tmp_path: Path) -> None:
    """Two ``stack up`` at once both started a broker; the second now waits for the first."""
    order: list[str] = []

    def hold(name: str) -> None:
        with stack_lock(tmp_path):
            order.append(f"{name} in")
            time.sleep(0.3)
            order.append(f"{name} out")

    threads = [threading.Thread(target=hold, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    assert order == ["a in", "a out", "b in", "b out"]
    assert tmp_path.stat().st_mode & 0o777 == 0o700  # the stack's data: its owner's only


def test_the_embedded_brokers_keep_a_quiet_topic_a_day_not_a_week(tmp_path: Path) -> None:
    """Retention deletes closed segments only: a quiet topic's segment (the dead letters' original
    bytes, the audit) closed at 64 MB or after log.roll.hours' 7-day default, so "24 h" kept 8 days."""
    from vigil.infra.settings import Settings
    from vigil.infra.stack.kafka import node_properties

    props = dict(line.split("=", 1) for line in node_properties(Settings(home=tmp_path), 0).splitlines() if "=" in line)
    assert props["log.retention.hours"] == "24" and props["log.roll.hours"] == "1"
    assert int(props["log.retention.bytes"]) > 0
