"""Commands for the stack, the worker, the demo and the schemas."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from vigil.cli.jsonout import emit_json
from vigil.infra.connect import redacted_url
from vigil.infra.settings import get_settings

stack_app = typer.Typer(help="Embedded Kafka (KRaft) + Redis on loopback", no_args_is_help=True)
schemas_app = typer.Typer(help="JSON Schema of every topic's records", no_args_is_help=True)
console = Console(stderr=False)

JsonFlag = Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")]


@stack_app.command("up")
def stack_up_cmd(
    json_out: JsonFlag = False,
    secure: bool = typer.Option(
        False,
        "--secure",
        help="Kafka SASL_SSL (SCRAM-SHA-512, local CA) and Redis with ACL user + password; "
        "secrets in ~/.cache/vigil/secrets (VIGIL_HOME)",
    ),
    brokers: int = typer.Option(
        None,
        "--brokers",
        min=1,
        max=5,
        help="embedded KRaft nodes (default: settings, 1); 3 = a replicated cluster (RF 3, min ISR 2)",
    ),
) -> None:
    """Start the embedded broker(s) and Redis (nothing when VIGIL_KAFKA__BOOTSTRAP / VIGIL_REDIS__URL
    are set). Run workers with the same VIGIL_KAFKA__BROKERS / SECURITY_PROTOCOL as the stack;
    `stack status` and `stack down` need neither option: they read what `up` started."""
    from vigil.infra.stack import StackError, stack_up
    from vigil.schemas.errors import UserError

    settings = get_settings()
    kafka_update: dict[str, object] = {}
    if secure:
        kafka_update["security_protocol"] = "SASL_SSL"
    if brokers is not None:
        kafka_update["brokers"] = brokers
    if kafka_update:  # validated as the environment's settings are: the ports of 3 brokers included
        try:
            settings = settings.with_kafka(**kafka_update)
        except UserError as exc:
            raise UserError(f"with these options: {exc}") from None
    try:
        info = stack_up(settings)
    except StackError as exc:
        raise UserError(f"the stack did not start: {exc}") from exc
    console.print(f"Kafka {info.bootstrap}  Redis {redacted_url(info.redis_url)}  ({info.started_s:.1f} s)")
    if secure:
        console.print(
            f"secure: SASL_SSL, CA {settings.home / 'tls' / 'ca.pem'}, secrets in "
            f"{settings.home / 'secrets'}; "
            "run workers with VIGIL_KAFKA__SECURITY_PROTOCOL=SASL_SSL"
        )
    if settings.kafka.brokers > 1:
        console.print(
            f"{settings.kafka.brokers} brokers, replication factor {info.replication_factor}; "
            f"run workers with VIGIL_KAFKA__BROKERS={settings.kafka.brokers}"
        )
    if json_out:
        emit_json(info.as_dict())


@stack_app.command("down")
def stack_down_cmd(
    wipe: bool = typer.Option(False, help="also delete Kafka and Redis data"), json_out: JsonFlag = False
) -> None:
    """Stop every broker `stack up` started (one node or a cluster) and Redis."""
    from vigil.infra.stack import stack_down

    stopped = stack_down(get_settings(), wipe=wipe)
    console.print(f"stopped: {stopped}")
    if json_out:
        emit_json(stopped)


@stack_app.command("status")
def stack_status_cmd(json_out: JsonFlag = False) -> None:
    """Pids, ports and versions of the stack as `stack up` started it (its nodes, its protocol)."""
    from vigil.infra.stack import stack_status

    status = stack_status(get_settings())
    console.print_json(json.dumps(status))
    if json_out:
        emit_json(status)


def worker(
    metrics_port: int = typer.Option(None, min=1, max=65535, help="serve Prometheus metrics on this port"),
    agents: str = typer.Option("ingest,alert,treat,interop", help="agent modules this process runs"),
) -> None:
    """Run one Faust worker against the configured (or embedded) Kafka and Redis."""
    from vigil.cli.preflight import require_broker, require_redis, require_topics
    from vigil.cli.worker import AGENT_MODULES, run_worker_foreground
    from vigil.models.bundle import load_stepping_bundle
    from vigil.models.stream_step import served_alert_threshold, served_bundle_dir
    from vigil.schemas.errors import UserError

    chosen = tuple(a.strip() for a in agents.split(","))
    unknown = [a for a in chosen if a not in AGENT_MODULES]
    if unknown:
        raise UserError(f"unknown agent module {unknown[0]!r} in --agents: choose from {', '.join(AGENT_MODULES)}")
    settings = get_settings()
    # the bundle (VIGIL_BUNDLE_DIR) and the site's alert threshold (VIGIL_SITE__*): a folder without
    # a bundle, or a value the bundle cannot serve, stops here
    folder = served_bundle_dir(settings.bundle_dir)
    served_alert_threshold(settings.site.facts(), artifacts_dir=folder)
    if settings.bundle_dir is not None:  # the operator's bundle opens here, or is one line (not in the running worker)
        load_stepping_bundle(folder, prefer_gpu=False)
    require_broker(settings)  # one line with a hint, not half a minute of connection errors
    require_topics(settings)
    require_redis(settings)
    run_worker_foreground(metrics_port or settings.metrics_port, chosen)


def demo(
    patients: int = typer.Option(40, min=1, max=20000, help="ICU stays to replay (half of them septic)"),
    speed: float = typer.Option(40.0, min=0.0, help="patient-hours replayed per second (0 = as fast as possible)"),
    duration: float = typer.Option(None, min=0.1, help="stop producing after this many seconds"),
    bad: int = typer.Option(12, min=0, help="malformed events mixed in (they must reach the dead letters)"),
    serve: bool = typer.Option(True, help="also serve the ward dashboard during the demo"),
    port: int = typer.Option(None, min=1, max=65535, help="dashboard port (default: settings.web_port)"),
    keep: bool = typer.Option(False, help="keep the worker and dashboard running after the replay"),
    json_out: JsonFlag = False,
) -> None:
    """Start the embedded stack and a worker, replay real ICU stays, and account for every event.
    SIGTERM, SIGHUP and Ctrl-C stop the worker and the dashboard too."""
    import time

    from vigil.cli.demo import run_demo
    from vigil.infra.logging import configure_logging

    emitted = False

    def hold(summary: dict[str, Any]) -> None:
        # --keep: the summary (and its JSON line) comes when the replay is accounted for, then the
        # worker and the dashboard run on until the user stops them
        nonlocal emitted
        try:  # a stop (Ctrl-C, SIGTERM) may come as soon as the summary line is out
            if json_out:
                emitted = True
                emit_json(summary)
            Console(stderr=True).print("Worker and dashboard keep running; Ctrl-C (or SIGTERM) stops them.")
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            return

    configure_logging(level="WARNING")
    # kafka-python's connection chatter while the broker starts is not the user's business
    logging.getLogger("kafka").setLevel(logging.ERROR)
    settings = get_settings()
    summary = run_demo(
        settings,
        patients,
        speed,
        duration,
        bad,
        console,
        serve_port=(port or settings.web_port) if serve else None,
        keep=hold if keep else None,
    )
    if json_out and not emitted:
        emit_json(summary)
    if summary["lost"]:
        raise typer.Exit(1)


@schemas_app.command("export")
def schemas_export(directory: Path, json_out: JsonFlag = False) -> None:
    """Write the JSON Schema of every topic's record type into DIRECTORY."""
    from vigil.schemas.export import export_schemas

    written = export_schemas(directory)
    for path in written:
        console.print(str(path))
    if json_out:
        emit_json({"written": [str(p) for p in written], "count": len(written)})


def register(app: typer.Typer) -> None:
    from vigil.cli.access import access
    from vigil.cli.acls import acls
    from vigil.cli.compose_secrets import compose_secrets
    from vigil.cli.compose_tls import compose_tls
    from vigil.cli.quotas import quotas
    from vigil.cli.redis_users import redis_users
    from vigil.cli.topics import topics

    stack_app.command("access")(access)
    stack_app.command("acls")(acls)
    stack_app.command("compose-secrets")(compose_secrets)
    stack_app.command("compose-tls")(compose_tls)
    stack_app.command("quotas")(quotas)
    stack_app.command("redis-users")(redis_users)
    stack_app.command("topics")(topics)
    app.add_typer(stack_app, name="stack")
    app.add_typer(schemas_app, name="schemas")
    app.command("worker")(worker)
    app.command("demo")(demo)
