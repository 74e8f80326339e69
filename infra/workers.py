"""Start and stop ``vigil worker`` processes (demo, bench, tests): real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from vigil.infra.settings import Settings
from vigil.schemas.errors import UserError

# `vigil worker`'s exit status when it left its group because it had stopped reading: a partition it
# held was not read (agents/progress.py) or its event loop did not run (agents/loop.py). Its
# supervisor starts it again (sysexits' EX_TEMPFAIL)
EXIT_LEFT_GROUP = 75


def _connection_env(prefix: str, section: BaseModel) -> dict[str, str | None]:
    """``VIGIL_<SECTION>__<FIELD>`` for each non-secret field: its value, or None (unset) where
    it is the default, so the child resolves its endpoints exactly as the parent did."""
    default = type(section)()
    out: dict[str, str | None] = {}
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, SecretStr) or isinstance(getattr(default, name), SecretStr):
            continue
        out[f"{prefix}{name.upper()}"] = None if value == getattr(default, name) else str(value)
    return out


def worker_env(settings: Settings, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """The environment of a child process connecting like ``settings``: the same home, endpoints,
    security protocol and bundle. Passwords never go into it: an embedded stack's child reads them from
    ``<home>/secrets`` (0600) through ``infra.connect``; explicit ones are inherited as set. A name
    ``extra`` maps to None is left out: a port of the parent's (``VIGIL_METRICS_PORT``) that several
    children would each try to bind."""
    env = dict(os.environ)
    env["VIGIL_HOME"] = str(settings.home)
    for name, value in (
        _connection_env("VIGIL_KAFKA__", settings.kafka) | _connection_env("VIGIL_REDIS__", settings.redis)
    ).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    if settings.bundle_dir is not None:  # the bundle the parent serves or compares with
        env["VIGIL_BUNDLE_DIR"] = str(settings.bundle_dir)
    env.setdefault("VIGIL_LOG_FORMAT", "json")
    env["PYTHONUNBUFFERED"] = "1"
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def spawn_worker(
    settings: Settings,
    log_path: Path,
    extra_env: Mapping[str, str | None] | None = None,
    agents: tuple[str, ...] | None = None,
) -> subprocess.Popen[bytes]:
    """A ``vigil worker`` in its own session (a signal to the command never reaches it: the command
    stops it). A stop signal (Ctrl-C, SIGTERM, SIGHUP) that comes while it starts is held until the
    child is known, then the child is stopped and the signal acted on: raised inside ``Popen``, it
    would leave a worker that no ``finally`` can name (a replay cancelled as its worker started)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    with _HeldSignals() as held:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vigil.cli", "worker", *(["--agents", ",".join(agents)] if agents else [])],
            env=worker_env(settings, extra_env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    if held.signum is not None:
        stop_worker(proc)
        held.deliver()
    return proc


def exit_problem(returncode: int | None, log_path: Path, who: str = "the worker") -> str | None:
    """One line for a worker that ended on its own: how, and the log where it said why (``vigil
    worker`` exits 2 on a port another process holds). None while it runs. A worker that died at start
    went unnoticed: the demo waited its 120 s and reported every event lost, the bench measured
    fewer workers than it said."""
    if returncode is None:
        return None
    if returncode < 0:
        how = f"was ended by signal {-returncode}"
    elif returncode == EXIT_LEFT_GROUP:
        how = f"left its group (exit {returncode}: it had stopped reading) and nothing starts it again"
    else:
        how = f"exited with code {returncode}"
    return f"{who} {how}: its log {log_path} says why"


def require_running(proc: subprocess.Popen[bytes], log_path: Path, who: str = "the worker") -> None:
    """A ``UserError`` (one line, ``exit_problem``) once ``proc`` has ended: a phase waiting for it
    would wait its whole timeout, then report what it never did."""
    if (problem := exit_problem(proc.poll(), log_path, who)) is not None:
        raise UserError(problem)


class SupervisedWorker:
    """A spawned worker that is started again when it exits ``EXIT_LEFT_GROUP``, as compose's
    ``restart`` would (the demo's worker). Any other exit stops the caller at its next ``check``
    with one line (``exit_problem``): nothing the caller waits for will come."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        extra_env: Mapping[str, str | None] | None = None,
        who: str = "the worker",
    ) -> None:
        self._start = lambda: spawn_worker(settings, log_path, extra_env)
        self.log_path, self.who = log_path, who
        self.proc = self._start()
        self.restarts = 0

    def check(self) -> None:
        if self.proc.poll() == EXIT_LEFT_GROUP:
            self.restarts += 1
            self.proc = self._start()
        require_running(self.proc, self.log_path, self.who)

    def stop(self) -> int:
        return stop_worker(self.proc)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _HeldSignals:
    """Within the block, the stop signals are recorded, not acted on (main thread only: elsewhere
    Python delivers no signal); ``deliver`` then does what the handler before would have done."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> _HeldSignals:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._hold) for s in STOP_SIGNALS}
        return self

    def _hold(self, signum: int, _frame: Any) -> None:
        self.signum = self.signum or signum

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def deliver(self) -> None:
        if self.signum is None:
            return
        handler = self.previous.get(self.signum)
        if callable(handler):
            handler(self.signum, None)  # stop_on_signals' or Python's: KeyboardInterrupt
        elif handler != signal.SIG_IGN:
            os.kill(os.getpid(), self.signum)  # the default action, now the handler is back


def stop_worker(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
