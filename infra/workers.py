"""Start and stop ``vigil worker`` processes (demo, bench, tests): real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from vigil.infra.stack import StackInfo


def worker_env(info: StackInfo, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["VIGIL_KAFKA__BOOTSTRAP"] = info.bootstrap
    env["VIGIL_REDIS__URL"] = info.redis_url
    if info.security_protocol != "PLAINTEXT":
        # only the protocol and the stack home: the worker reads its passwords from
        # <home>/secrets (0600), so they never sit in an environment or a command line
        env["VIGIL_KAFKA__SECURITY_PROTOCOL"] = info.security_protocol
        if info.home:
            env["VIGIL_HOME"] = info.home
    env.setdefault("VIGIL_LOG_FORMAT", "json")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def spawn_worker(
    info: StackInfo, log_path: Path, extra_env: dict[str, str] | None = None, agents: tuple[str, ...] | None = None
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        [sys.executable, "-m", "vigil.cli", "worker", *(["--agents", ",".join(agents)] if agents else [])],
        env=worker_env(info, extra_env),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_worker(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
