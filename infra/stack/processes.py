"""Where the embedded stack keeps its files, and the process helpers it starts and stops servers
with (pid files, loopback ports, SIGTERM then SIGKILL)."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from vigil.infra.secrets import REDIS_USER
from vigil.schemas.errors import UserError

# the file that makes a folder a Vigil home (``stack up`` writes it; ``stack down`` needs it)
MARKER = ".vigil-home"


class StackError(UserError):
    """The embedded stack could not start; the message says what to install or check."""


@dataclass(frozen=True)
class StackPaths:
    home: Path

    @property
    def kafka(self) -> Path:
        return self.home / "kafka"

    @property
    def libs(self) -> Path:
        return self.kafka / "libs"

    def node(self, index: int, brokers: int) -> Path:
        """A single broker lives in ``kafka/`` (as it always has); cluster nodes in their own
        folders, so a home can hold both without mixing their KRaft metadata."""
        return self.kafka if brokers == 1 else self.kafka / f"node-{index}"

    def node_pid_files(self) -> list[Path]:
        """The pid files of every broker this home ever started (single node and cluster)."""
        return [self.kafka / "kafka.pid", *sorted(self.kafka.glob("node-*/kafka.pid"))]

    @property
    def redis(self) -> Path:
        return self.home / "redis"

    @property
    def redis_pid(self) -> Path:
        return self.redis / "redis.pid"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def started(self) -> Path:
        """What ``stack up`` started (how many brokers, which protocol): ``status`` reads it, so it
        needs none of ``up``'s options (it listed node 0 of three, and spoke PLAINTEXT to SASL_SSL)."""
        return self.home / "stack.json"

    @property
    def marker(self) -> Path:
        """Written by ``stack up`` alone (``mark_stack_home``): this folder is a Vigil home."""
        return self.home / MARKER

    def is_stack_home(self) -> bool:
        """The stack ran here: its marker, or, in a home older than the marker, what only the stack
        writes: Kafka's cluster id or formatted data folder, or the embedded Redis' ``auth.conf`` (its
        ``vigil`` ACL user).
        ``stack down`` touches nothing elsewhere, and ``--wipe`` deletes nothing (an empty
        VIGIL_HOME made the current folder the home). Not ``stack.lock``: a plain ``stack down``
        created it wherever VIGIL_HOME pointed, and ``down --wipe`` then trusted it."""
        formatted = [self.kafka / "cluster.id", self.kafka / "data" / "meta.properties"]  # meta: before 1 Dec
        if self.marker.is_file() or any(path.is_file() for path in formatted):
            return True
        try:
            auth = (self.redis / "auth.conf").read_text(errors="replace")
        except OSError:
            return False
        return any(line.startswith(f"user {REDIS_USER} on >") for line in auth.splitlines())


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port_series(
    start: int,
    count: int,
    avoid: Collection[int],
    taken: Callable[[int], bool] = lambda port: port_open("127.0.0.1", port),
) -> int | None:
    """The first port from ``start`` up that, with the ``count - 1`` ports above it two apart (the
    ports of an embedded cluster's nodes, ``+ 2i``), is neither one of the stack's other ports
    (``avoid``) nor ``taken``: what a "port taken" hint may suggest. The hint once named a setting
    only, and the port next to the taken one was the controller's. None: none up to 65535."""
    for base in range(start, 65536 - 2 * (count - 1)):
        series = range(base, base + 2 * count, 2)
        if not set(series) & set(avoid) and not any(taken(port) for port in series):
            return base
    return None


def pid_alive(pid_file: Path) -> int | None:
    """The pid in ``pid_file`` if that process is running and is the one started, else None. The
    file holds the pid and the process' start time (``started_at``): after a crash or a reboot the
    pid may be another process' of the same user, which ``stop_pid`` SIGTERMed, then SIGKILLed. A
    file of an older version holds the pid alone and is taken at its word."""
    try:
        pid_text, _, started = pid_file.read_text().strip().partition(" ")
        pid = int(pid_text)
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    if started and started != started_at(pid):
        return None  # the pid was reused: not the server this file names
    return pid


def server_started(pid_file: Path, port: int, host: str = "127.0.0.1") -> bool:
    """The server ``pid_file`` names runs, or is still booting: alive and named by pid and start
    time (its port may not be open yet: waited for, not started twice) and not a zombie (a server
    its parent killed -9, as the reliability tests do, was taken for booting and never started
    again), or, for a file of the pid alone (an older version's, or written where /proc could not
    say), alive and listening on ``port``. Such a file naming an unrelated live process (the pid
    reused after a reboot) made the node "booting", and ``stack up`` waited out its whole timeout
    for a port nobody opened."""
    pid = pid_alive(pid_file)
    if pid is None or exited(pid):  # a server killed by its parent (tests, the demo) is its zombie
        return False
    try:
        with_start_time = len(pid_file.read_text().split()) > 1
    except OSError:
        return False
    return with_start_time or port_open(host, port)


def started_at(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks after boot, /proc/<pid>/stat field 22): with the pid,
    it names one process; None where /proc cannot say."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def _private_home(home: Path) -> None:
    """Create ``home`` if need be, private to its owner (0700)."""
    home.mkdir(parents=True, exist_ok=True)
    if home.stat().st_uid == os.getuid():
        # the brokers' logs hold every event (patient ids, values) and Redis' files every window:
        # the home was 0755, readable by any local user where $HOME or VIGIL_HOME lets them in
        home.chmod(0o700)


def mark_stack_home(home: Path) -> None:
    """Make ``home`` a Vigil home: created, private to its owner, with its marker. Only ``stack up``
    calls it: ``stack down`` and its ``--wipe`` act only in a folder marked so."""
    _private_home(home)
    marker = StackPaths(home).marker
    if not marker.exists():
        marker.write_text("A Vigil home: `vigil stack down --wipe` deletes the Kafka and Redis data in it.\n")


@contextmanager
def stack_lock(home: Path) -> Iterator[None]:
    """The embedded stack's start and stop, one at a time per home: two ``stack up`` (a demo and a
    ``stack up``) both started a broker, each wrote its pid in the same file, and the survivor, whose
    pid the file no longer held, was left running where ``stack down`` could not stop it. The home,
    where the stack keeps its data, is made private to its owner (0700). ``stack down`` takes it
    only in a marked home (``StackPaths.is_stack_home``): it made any folder VIGIL_HOME named."""
    _private_home(home)
    with open(home / "stack.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits for the other start or stop to end
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def exited(pid: int) -> bool:
    """The process has ended: gone, or a zombie. A server this process started (a test's stack, the
    demo's) stays a zombie until its parent reaps it, and a zombie still answers signal 0: reap it
    here, or a stop would wait out its whole timeout and SIGKILL a process that had already ended."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return True
    except ChildProcessError:
        pass  # not this process' child: its own parent reaps it
    try:
        os.kill(pid, 0)
    except OSError:
        return True
    try:  # another parent's zombie (state Z after the name in parentheses)
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def stop_pid(pid_file: Path, timeout_s: float = 20.0) -> bool:
    """SIGTERM (a broker shuts down cleanly), SIGKILL after ``timeout_s``; True if it was running."""
    return stop_pids([pid_file], timeout_s)


def stop_pids(pid_files: Sequence[Path], timeout_s: float = 20.0) -> bool:
    """``stop_pid`` for several servers at once: each SIGTERMed, then waited for together, SIGKILLed
    at a common deadline; True if any was running. A cluster's nodes are stopped so: one by one, the
    second node's controlled shutdown waited for a controller quorum the first had left with, and a
    three-node ``vigil stack down`` waited out a whole timeout (~27 s; together, the nodes leave as one)."""
    running: dict[int, Path] = {}
    for pid_file in pid_files:
        pid = pid_alive(pid_file)
        if pid is None:
            pid_file.unlink(missing_ok=True)
        else:
            running[pid] = pid_file
    for pid in running:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    waiting = set(running)
    while waiting := {pid for pid in waiting if not exited(pid)}:
        if time.monotonic() >= deadline:
            for pid in waiting:
                _signal(pid, signal.SIGKILL)
            break
        time.sleep(0.2)
    for pid_file in running.values():
        pid_file.unlink(missing_ok=True)
    return bool(running)


def _signal(pid: int, signum: int) -> None:
    """``os.kill``, for a server that may have ended since it was found running."""
    with suppress(ProcessLookupError):
        os.kill(pid, signum)


def start_daemon(args: list[str], log: Path | None, pid_file: Path) -> subprocess.Popen[bytes]:
    """Start a server in its own session (a Ctrl-C of the CLI does not reach it), record its pid."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child process
    child = subprocess.Popen(
        args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    pid_file.write_text(f"{child.pid} {started_at(child.pid) or ''}".strip())
    return child
