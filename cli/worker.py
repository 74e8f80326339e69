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

    def ready_otherwise() -> bool:
        """Readiness but for Redis: no agent crash-looping or stuck on a batch, no partition stalled,
        the event loop running (before its first beat, or blocked: not)."""
        return AGENTS.ok() and PROGRESS.ok() and LOOP.ok()

    if metrics_port:
        from prometheus_client import start_http_server

        export_readiness(settings, store_healthy, ready_otherwise)  # vigil_redis_up, vigil_worker_ready
        start_http_server(metrics_port, addr=settings.metrics_host)

    configure_logging()
    # GET /readyz on VIGIL_HEALTH_PORT and/or VIGIL_HEALTH_FILE
    # not ready while an agent crash-loops or cannot finish a batch, a partition is stalled, or the
    # event loop has not run (before its first beat, or blocked)
    start_readiness(settings, store_healthy, ready_otherwise)
    start_loop_watch(settings.watchdog.exit_after_s, EXIT_LEFT_GROUP, blocked_announcer(settings))
    publish_config_audit(settings)  # who started which configuration, when -> vigil.audit
    worker = _structlog_worker_class()(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    finally:
        if PROGRESS.exit_requested:  # the watchdog stopped it (agents/progress.py): start it again
            raise SystemExit(EXIT_LEFT_GROUP)


def _structlog_worker_class() -> type:
    import faust

    class StructlogWorker(faust.Worker):
        """Faust's worker, keeping Vigil's structlog set-up (JSON lines, PHI redaction) instead of
        letting mode replace the root handlers with its plain formatter."""

        def _setup_logging(self) -> None:
            from vigil.infra.logging import configure_logging

            configure_logging()

    return StructlogWorker
