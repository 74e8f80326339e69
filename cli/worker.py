"""``vigil worker``: one Faust worker in the foreground, with Vigil's logging, readiness and audit."""

from __future__ import annotations

AGENT_MODULES = ("ingest", "alert", "treat", "interop")


def run_worker_foreground(metrics_port: int | None = None, agents: tuple[str, ...] = AGENT_MODULES) -> None:
    """The ``vigil worker`` command: one Faust worker consuming its share of the partitions.

    ``agents`` selects the agent modules this process runs (all by default). A split deployment
    runs each selection under its own ``VIGIL_APP_ID`` (its own consumer group), e.g. the
    treatment agent as a separate group of workers beside the scoring pipeline."""
    import importlib

    from vigil.agents.app import app
    from vigil.agents.fleet import blocked_announcer
    from vigil.agents.health import AGENTS
    from vigil.agents.loop import LOOP, register_beat, start_loop_watch
    from vigil.agents.progress import PROGRESS
    from vigil.agents.runtime import store_healthy
    from vigil.infra.audit import publish_config_audit
    from vigil.infra.health import export_readiness, start_readiness
    from vigil.infra.logging import configure_logging
    from vigil.infra.secrets import require_real_log_key
    from vigil.infra.settings import get_settings
    from vigil.infra.workers import EXIT_LEFT_GROUP

    settings = get_settings()
    require_real_log_key(settings, "worker")  # before anything connects or logs a patient hash
    for name in agents:
        if name not in AGENT_MODULES:
            raise ValueError(f"unknown agent module {name!r}: choose from {', '.join(AGENT_MODULES)}")
        importlib.import_module(f"vigil.agents.{name}")  # importing registers the module's agents
    importlib.import_module("vigil.agents.lag")  # vigil_consumer_lag, whatever the selection
    importlib.import_module("vigil.agents.fleet")  # announces what it serves (vigil workers)
    register_beat()  # the event loop's beat, read by a thread of its own (agents/loop.py)

    # readiness but for Redis, each cause named apart (a stall, a blocked loop and a crash-looping
    # agent have different remedies): no agent crash-looping or stuck on a batch, no partition
    # stalled, the event loop running (before its first beat, or blocked: not)
    checks = {"agents_ok": AGENTS.ok, "partitions_ok": PROGRESS.ok, "loop_ok": LOOP.ok}

    if metrics_port:
        from prometheus_client import start_http_server

        export_readiness(settings, store_healthy, **checks)  # vigil_redis_up, vigil_worker_ready
        start_http_server(metrics_port, addr=settings.metrics_host)

    configure_logging()
    # GET /readyz on VIGIL_HEALTH_PORT and/or VIGIL_HEALTH_FILE
    start_readiness(settings, store_healthy, **checks)
    start_loop_watch(settings.watchdog.exit_after_s, EXIT_LEFT_GROUP, blocked_announcer(settings))
    publish_config_audit(settings)  # who started which configuration, when -> vigil.audit
    worker = _structlog_worker_class()(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    finally:
        if PROGRESS.exit_requested:  # the watchdog stopped it (agents/progress.py): start it again
            raise SystemExit(EXIT_LEFT_GROUP)


def _structlog_worker_class() -> type:
    import asyncio
    import signal
    import sys
    import time

    import faust

    from vigil.agents.loop import stop_reason
    from vigil.agents.progress import PROGRESS
    from vigil.infra.logging import get_logger

    log = get_logger(__name__)
    created = time.monotonic()

    class StructlogWorker(faust.Worker):
        """Faust's worker, keeping Vigil's structlog set-up (JSON lines, PHI redaction) instead of
        letting mode replace the root handlers with its plain formatter, and saying why it stops
        (``worker.stopping``, ``agents.loop.stop_reason``): mode's own line for a signal is at INFO,
        under the WARNING Vigil's logging sets for mode, and its run ends quietly."""

        _stopping_logged = False

        def _setup_logging(self) -> None:
            from vigil.infra.logging import configure_logging

            configure_logging()

        def _schedule_shutdown(self, sig: signal.Signals) -> None:
            """Every stopping signal (SIGINT, SIGTERM) comes here from the loop's handler: logged
            as it arrives, not after a stop that can take its time or never end."""
            if not self._signal_stop_time:  # mode acts on the first one only
                self._log_stopping(sig.name, None)
            super()._schedule_shutdown(sig)

        def on_worker_shutdown(self) -> None:
            """Called by mode as the run ends, whatever ended it; an exception escaping the run
            (mode logs it, then re-raises) is in flight here."""
            escaping = sys.exc_info()[1]
            self._log_stopping(None, None if isinstance(escaping, asyncio.CancelledError) else escaping)
            super().on_worker_shutdown()

        def _log_stopping(self, signal_name: str | None, escaping: BaseException | None) -> None:
            if self._stopping_logged:  # the signal's line said it already
                return
            self._stopping_logged = True
            crash = self.crash_reason or escaping
            log.warning(
                "worker.stopping",
                **stop_reason(signal_name, crash, PROGRESS.exit_requested, time.monotonic() - created),
            )

    return StructlogWorker
