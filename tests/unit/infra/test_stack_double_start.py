"""A server of the stack still booting (alive, its pid file naming it by pid and start time, its port
not open yet: a Ctrl-C'd ``stack up``, a broker's log recovery after an unclean stop, Redis loading
its AOF) is waited for, not started a second time over the same data and pid file."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.infra.ports import free_port_block
from vigil.infra.settings import Settings
from vigil.infra.stack import kafka, redis_server
from vigil.infra.stack.processes import started_at


@pytest.fixture
def booting() -> Iterator[subprocess.Popen[bytes]]:
    """Stands for the first server process, alive and not listening yet."""
    process = subprocess.Popen(["sleep", "30"])
    yield process
    process.kill()
    process.wait()


def test_a_booting_broker_is_waited_for_not_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, booting: subprocess.Popen[bytes]
) -> None:
    port = free_port_block(2)
    settings = Settings(home=tmp_path, kafka={"embedded_port": port, "embedded_controller_port": port + 1})
    pid_file = kafka.node_pid_file(settings, 0)
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(f"{booting.pid} {started_at(booting.pid)}")
    started: list[list[str]] = []
    waited: list[object] = []
    monkeypatch.setattr(kafka, "ensure_kafka_jars", lambda paths: paths.libs)
    monkeypatch.setattr(kafka, "_prepare_node", lambda *args: ["java", "kafka.Kafka"])
    monkeypatch.setattr(kafka, "start_daemon", lambda args, log, pid: started.append(args))
    monkeypatch.setattr(kafka, "wait_kafka_ready", lambda settings, children, timeout_s: waited.append(children))
    kafka.start_kafka(settings)
    assert started == [] and waited == [{}]
    assert pid_file.read_text().split()[0] == str(booting.pid)


def _start_kafka_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pid_text: str) -> list[list[str]]:
    """``start_kafka`` on a home whose node 0 pid file holds ``pid_text``, servers stood in for: the
    nodes it started."""
    port = free_port_block(2)
    settings = Settings(home=tmp_path, kafka={"embedded_port": port, "embedded_controller_port": port + 1})
    pid_file = kafka.node_pid_file(settings, 0)
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(pid_text)
    started: list[list[str]] = []
    monkeypatch.setattr(kafka, "ensure_kafka_jars", lambda paths: paths.libs)
    monkeypatch.setattr(kafka, "_prepare_node", lambda *args: ["java", "kafka.Kafka"])
    monkeypatch.setattr(kafka, "start_daemon", lambda args, log, pid: started.append(args))
    monkeypatch.setattr(kafka, "wait_kafka_ready", lambda *args: None)
    kafka.start_kafka(settings)
    return started


def test_a_pid_file_reused_by_another_process_does_not_hold_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, booting: subprocess.Popen[bytes]
) -> None:
    """The start-time check still tells a stale file (its pid now another process') from a booting broker."""
    # started 1 tick after boot: not this process
    assert _start_kafka_over(tmp_path, monkeypatch, f"{booting.pid} 1") == [["java", "kafka.Kafka"]]


def test_a_redis_still_loading_is_waited_for_not_started_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, booting: subprocess.Popen[bytes]
) -> None:
    settings = Settings(home=tmp_path, redis={"embedded_port": free_port_block(1)})
    pid_file = tmp_path / "redis" / "redis.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(f"{booting.pid} {started_at(booting.pid)}")
    started: list[list[str]] = []
    pings = iter([False, False, True])  # loading, then ready

    class Client:
        def ping(self) -> bool:
            return next(pings)

    binary = redis_server.RedisBinary("/usr/bin/redis-server", (7, 0, 15), True)
    monkeypatch.setattr(redis_server, "redis_binary", lambda settings: binary)
    monkeypatch.setattr(redis_server, "start_daemon", lambda args, log, pid: started.append(args))
    monkeypatch.setattr(redis_server, "redis_client", lambda *args, **kwargs: Client())
    assert redis_server.start_redis(settings, timeout_s=5).startswith("redis://")
    assert started == [] and pid_file.read_text().split()[0] == str(booting.pid)


def test_a_pid_only_file_naming_an_unrelated_live_process_does_not_hold_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, booting: subprocess.Popen[bytes]
) -> None:
    """A pid file of the pid alone (an older version's, or written where /proc could not say) cannot
    tell a booting broker from a process that got the pid after a reboot: without the port open it
    is not the broker, which is started (the start waited 120 s for a port nobody would open)."""
    assert _start_kafka_over(tmp_path, monkeypatch, str(booting.pid)) == [["java", "kafka.Kafka"]]


def test_a_pid_only_file_of_a_listening_server_is_still_taken_at_its_word(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, booting: subprocess.Popen[bytes]
) -> None:
    """A broker an older version started (pid-only file) and serving on its port is not started again."""
    import socket

    port = free_port_block(2)
    settings = Settings(home=tmp_path, kafka={"embedded_port": port, "embedded_controller_port": port + 1})
    pid_file = kafka.node_pid_file(settings, 0)
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(str(booting.pid))
    monkeypatch.setattr(kafka, "ensure_kafka_jars", lambda paths: paths.libs)
    monkeypatch.setattr(kafka, "_prepare_node", lambda *args: pytest.fail("started a second broker"))
    monkeypatch.setattr(kafka, "wait_kafka_ready", lambda *args: None)
    with socket.socket() as server:  # stands for the broker's client listener
        server.bind(("127.0.0.1", port))
        server.listen()
        kafka.start_kafka(settings)


def test_a_pid_only_redis_file_naming_an_unrelated_live_process_does_not_hold_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, booting: subprocess.Popen[bytes]
) -> None:
    settings = Settings(home=tmp_path, redis={"embedded_port": free_port_block(1)})
    pid_file = tmp_path / "redis" / "redis.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(str(booting.pid))
    started: list[list[str]] = []

    class Server:
        def poll(self) -> None:
            return None

    class Client:
        def ping(self) -> bool:
            return bool(started)

    binary = redis_server.RedisBinary("/usr/bin/redis-server", (7, 0, 15), True)
    monkeypatch.setattr(redis_server, "redis_binary", lambda settings: binary)

    def start_daemon(args: list[str], log: object, pid: object) -> Server:
        started.append(args)
        return Server()

    monkeypatch.setattr(redis_server, "start_daemon", start_daemon)
    monkeypatch.setattr(redis_server, "redis_client", lambda *args, **kwargs: Client())
    assert redis_server.start_redis(settings, timeout_s=2).startswith("redis://")
    assert len(started) == 1


def test_a_server_its_parent_killed_is_started_again(tmp_path: Path) -> None:
    """A server killed -9 by the process that started it (the reliability tests' broker and Redis
    outages) is that process' zombie until reaped: alive to signal 0, its start time its own. Taken
    for booting, it was never started again, and the stack waited out its timeout."""
    from vigil.infra.stack.processes import server_started

    process = subprocess.Popen(["sleep", "30"])
    pid_file = tmp_path / "server.pid"
    pid_file.write_text(f"{process.pid} {started_at(process.pid)}")
    assert server_started(pid_file, free_port_block(1))  # alive, not listening yet: booting
    process.kill()
    time_left = 50
    while started_at(process.pid) is not None and Path(f"/proc/{process.pid}/stat").read_text().split()[2] != "Z":
        time_left -= 1  # until the kernel has made it a zombie (not reaped: nobody waits for it)
        assert time_left, "the killed process never became a zombie"
        time.sleep(0.05)
    assert not server_started(pid_file, free_port_block(1))
