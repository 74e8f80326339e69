"""Commands for the on-call surfaces: ``vigil serve`` (dashboard + FHIR intake), ``vigil users add``,
``vigil alerts tail`` (terminal feed) and ``vigil alerts ack``."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from vigil.cli.jsonout import emit_json
from vigil.infra.settings import Settings, get_settings

alerts_app = typer.Typer(help="Alert feed and acknowledgements", no_args_is_help=True)
users_app = typer.Typer(help="Dashboard users (argon2 password hashes)", no_args_is_help=True)
console = Console()

JsonFlag = Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")]
BootstrapOpt = Annotated[str | None, typer.Option("--bootstrap", help="Kafka bootstrap (default: settings)")]
BANDS = ("low-medium", "medium", "high")


def settings_for(bootstrap: str | None) -> Settings:
    """The settings, with ``--bootstrap`` (when given) as the Kafka bootstrap list."""
    settings = get_settings()
    if bootstrap is None:
        return settings
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"bootstrap": bootstrap})})


def default_users_file(settings: Settings) -> Path:
    return settings.users_file or settings.home / "users.json"


def serve(
    port: int = typer.Option(None, help="listen port (default: settings.web_port)"),
    host: str = typer.Option("127.0.0.1", help="listen address (loopback unless behind a TLS proxy)"),
    users_file: Path = typer.Option(
        None, help="users file (default: settings.users_file or HOME/users.json)", show_default=False
    ),
    backfill: int = typer.Option(5000, help="records per partition read back at start for the ward state"),
    secure_cookies: bool = typer.Option(False, help="mark cookies Secure (when served over HTTPS)"),
    bootstrap: BootstrapOpt = None,
) -> None:
    """Serve the ward dashboard, /healthz, /readyz, /metrics and the FHIR intake."""
    import uvicorn

    from vigil.agents.web.app import create_app
    from vigil.agents.web.auth import UserDirectory
    from vigil.agents.web.kafka_feed import KafkaWardFeed
    from vigil.infra.logging import configure_logging
    from vigil.infra.secrets import DefaultSecretError, require_real_log_key

    settings = settings_for(bootstrap)
    try:
        require_real_log_key(settings, "serve")  # dashboard row ids are keyed with it too
    except DefaultSecretError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging()
    # re-read when the file changes: a removed user or a new password ends the old sessions
    users = UserDirectory(users_file or default_users_file(settings))
    feed = KafkaWardFeed(settings, backfill=backfill)  # settings_for(bootstrap) carries --bootstrap
    app = create_app(settings, feed, users=users, cookie_secure=secure_cookies)
    console.print(
        f"Vigil dashboard on http://{host}:{port or settings.web_port}/ ({len(users.current())} users)", highlight=False
    )
    uvicorn.run(app, host=host, port=port or settings.web_port, log_config=None, access_log=False)


@users_app.command("add")
def users_add(
    name: str,
    role: str = typer.Option("viewer", help="clinician (may acknowledge) or viewer (read-only)"),
    users_file: Path = typer.Option(None, help="JSON users file (default: HOME/users.json)", show_default=False),
    password: str = typer.Option(
        None, help="the password (prompted when omitted; prefer the prompt)", envvar="VIGIL_NEW_PASSWORD"
    ),
    json_out: JsonFlag = False,
) -> None:
    """Add or replace a dashboard user; stores only the argon2id hash."""
    from vigil.agents.web.auth import add_user

    if role not in ("clinician", "viewer"):
        console.print("[red]role must be clinician or viewer[/]")
        raise typer.Exit(2)
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 8:
        console.print("[red]password must have at least 8 characters[/]")
        raise typer.Exit(2)
    path = users_file or default_users_file(get_settings())
    user = add_user(path, name, password, role)  # type: ignore[arg-type]
    console.print(f"{user.username} ({user.role}) -> {path}", highlight=False)
    if json_out:
        emit_json({"username": user.username, "role": user.role, "users_file": str(path)})


@users_app.command("remove")
def users_remove(
    name: str,
    users_file: Path = typer.Option(None, help="JSON users file (default: HOME/users.json)", show_default=False),
    json_out: JsonFlag = False,
) -> None:
    """Remove a dashboard user; their sessions end at their next request."""
    from vigil.agents.web.auth import remove_user

    path = users_file or default_users_file(get_settings())
    if not remove_user(path, name):
        console.print(f"[red]no user {name!r} in {path}[/]", highlight=False)
        raise typer.Exit(1)
    console.print(f"removed {name} from {path}", highlight=False)
    if json_out:
        emit_json({"removed": name, "users_file": str(path)})


@alerts_app.command("tail")
def alerts_tail(
    ward: str = typer.Option(None, help="only this ward"),
    min_band: str = typer.Option(None, help="only this severity or higher: low-medium, medium, high"),
    explain: bool = typer.Option(False, "--explain", help="print the rule breakdown, top features, trend"),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="replay the topic from its start"),
    limit: int = typer.Option(None, help="stop after this many transitions shown"),
    duration: float = typer.Option(None, help="stop after this many seconds"),
    bootstrap: BootstrapOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Follow vigil.alerts: one line per alert transition (Ctrl-C to stop)."""
    from pydantic import TypeAdapter, ValidationError

    from vigil.cli.alert_feed import passes, render_transition, transition_json
    from vigil.cli.jsonout import emit_json as emit_line
    from vigil.infra.connect import consumer_from_now
    from vigil.schemas import topics
    from vigil.schemas.alerts import Alert

    if min_band is not None and min_band not in BANDS:
        console.print(f"[red]--min-band must be one of {', '.join(BANDS)}[/]")
        raise typer.Exit(2)
    adapter = TypeAdapter(Alert)
    consumer = consumer_from_now(settings_for(bootstrap), (topics.ALERTS,), client_id="vigil-alerts-tail")
    if from_beginning:
        consumer.seek_to_beginning()
    seen, shown, invalid = 0, 0, 0
    by_state: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    wards: dict[str, str] = {}
    deadline = time.monotonic() + duration if duration else None
    if not json_out:
        console.print(
            f"[dim]following {topics.ALERTS}{' from the beginning' if from_beginning else ''} (Ctrl-C to stop)[/]"
        )
    try:
        while (limit is None or shown < limit) and (deadline is None or time.monotonic() < deadline):
            for _tp, records in consumer.poll(timeout_ms=250).items():
                for record in records:
                    seen += 1
                    try:
                        alert = adapter.validate_json(record.value)
                    except ValidationError:
                        invalid += 1
                        continue
                    # acknowledge/resolve/escalate-by-timer transitions carry no ward: reuse the open's
                    if alert.ward:
                        wards[alert.alert_id] = alert.ward
                    elif alert.alert_id in wards:
                        alert = alert.model_copy(update={"ward": wards[alert.alert_id]})
                    if not passes(alert, ward, min_band):
                        continue
                    shown += 1
                    by_state[alert.state] += 1
                    by_severity[alert.severity] += 1
                    if json_out:
                        emit_line(transition_json(alert))
                    else:
                        console.print(render_transition(alert, explain))
                    if limit is not None and shown >= limit:
                        break
                if limit is not None and shown >= limit:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    summary: dict[str, Any] = {
        "summary": True,
        "transitions": shown,
        "read": seen,
        "invalid": invalid,
        "by_state": dict(by_state),
        "by_severity": dict(by_severity),
    }
    if json_out:
        emit_json(summary)
    else:
        console.print(f"[dim]{shown} transitions shown ({seen} read)[/]")


@alerts_app.command("ack")
def alerts_ack(
    alert_id: str,
    patient: str = typer.Option(..., "--patient", help="the alert's patient id (the topic key)"),
    by: str = typer.Option(..., "--by", help="who acknowledges (audited)"),
    resolve: bool = typer.Option(False, "--resolve", help="resolve instead of acknowledge"),
    note: str = typer.Option(None, help="free-text note (no patient values, please)"),
    bootstrap: BootstrapOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Acknowledge (or --resolve) an alert: publishes an AlertAck on vigil.alerts.acks."""
    from pydantic import ValidationError

    from vigil.infra.connect import kafka_producer
    from vigil.infra.logging import get_logger, patient_hash
    from vigil.schemas import topics
    from vigil.schemas.alerts import AlertAck

    action: Literal["acknowledge", "resolve"] = "resolve" if resolve else "acknowledge"
    try:
        ack = AlertAck(alert_id=alert_id, patient_id=patient, action=action, by=by, at=datetime.now(UTC), note=note)
    except ValidationError as exc:
        console.print(f"[red]invalid acknowledgement:[/] {exc.errors(include_input=False)[0]['msg']}")
        raise typer.Exit(2) from exc
    producer = kafka_producer(settings_for(bootstrap), retries=5, client_id="vigil-alerts-ack")
    try:
        future = producer.send(topics.ALERT_ACKS, key=patient.encode(), value=ack.model_dump_json().encode())
        meta = future.get(timeout=30)
    finally:
        producer.close(timeout=5)
    get_logger("vigil.cli").info(
        "alert_ack", user=by, action=action, alert_id=alert_id, patient_hash=patient_hash(patient), source="cli"
    )
    console.print(
        f"{action} {alert_id} by {by} -> {topics.ALERT_ACKS}[{meta.partition}]@{meta.offset}", highlight=False
    )
    if json_out:
        emit_json(
            {
                "alert_id": alert_id,
                "action": action,
                "by": by,
                "at": ack.at.isoformat(),
                "topic": topics.ALERT_ACKS,
                "partition": meta.partition,
                "offset": meta.offset,
            }
        )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(users_app, name="users")
