"""Start and stop ``vigil worker`` processes (demo, bench, tests): real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from infra.stack import StackInfo


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


def spawn_worker(info: StackInfo, log_path: Path, extra_env: dict[str, str] | None = None,
                 agents: tuple[str, ...] | None = None) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    out = open(log_path, "ab")  # noqa: SIM115 - owned by the child
    return subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "worker", *(["--agents", ",".join(agents)] if agents else [])],
        env=worker_env(info, extra_env), stdout=out, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
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


AGENT_MODULES = ("ingest", "alert", "treat", "interop")


def run_worker_foreground(metrics_port: int | None = None, agents: tuple[str, ...] = AGENT_MODULES) -> None:
    """The ``vigil worker`` command: one Faust worker consuming its share of the partitions.

    ``agents`` selects the agent modules this process runs (all by default). A split deployment
    runs each selection under its own ``VIGIL_APP_ID`` (its own consumer group), e.g. the
    treatment agent as a separate group of workers beside the scoring pipeline."""
    import importlib

    from agents.app import app
    from infra.logging import configure_logging

    for name in agents:
        if name not in AGENT_MODULES:
            raise ValueError(f"unknown agent module {name!r}: choose from {', '.join(AGENT_MODULES)}")
        importlib.import_module(f"agents.{name}")  # importing registers the module's agents
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    from infra.audit import publish_config_audit
    from infra.health import start_readiness
    from infra.settings import get_settings
    from infra.tls import with_stack_credentials

    configure_logging()
    settings = with_stack_credentials(get_settings())
    start_readiness(settings)  # GET /readyz on VIGIL_HEALTH_PORT and/or VIGIL_HEALTH_FILE
    publish_config_audit(settings)  # who started which configuration, when -> vigil.audit
    worker = _structlog_worker_class()(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


def _structlog_worker_class() -> type:
    import faust

    class StructlogWorker(faust.Worker):
        """Faust's worker, keeping Vigil's structlog set-up (JSON lines, PHI redaction) instead of
        letting mode replace the root handlers with its plain formatter."""

        def _setup_logging(self) -> None:
            from infra.logging import configure_logging

            configure_logging()

    return StructlogWorker
