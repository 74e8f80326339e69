"""``vigil alerts``: the alert feed in a terminal (``tail``), the active alerts (``ls``) and
acknowledging, snoozing or resolving one (``ack``). Alert ids are the dashboard's: the first 8
characters identify an alert in both (a unique prefix of 6 or more is accepted).

``ls`` and ``ack`` read the active alerts from Redis, where the alert agent keeps each patient's
lifecycle (``cli.alert_state``); an ack is published on ``vigil.alerts.acks`` like the dashboard's.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.table import Table

from vigil.cli.jsonout import emit_json
from vigil.infra.settings import get_settings
from vigil.schemas.errors import UserError

alerts_app = typer.Typer(help="Alert feed, active alerts and acknowledgements", no_args_is_help=True)
console = Console()
JsonFlag = Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")]
BootstrapOpt = Annotated[str | None, typer.Option("--bootstrap", help="Kafka bootstrap (default: settings)")]
RedisOpt = Annotated[str | None, typer.Option("--redis", help="Redis URL (default: settings)")]
BANDS = ("low-medium", "medium", "high")


@alerts_app.command("tail")
def alerts_tail(
    ward: str = typer.Option(None, help="only this ward"),
    min_band: str = typer.Option(None, help="only this severity or higher: low-medium, medium, high"),
    explain: bool = typer.Option(False, "--explain", help="print the rule breakdown, top features, trend"),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="replay the topic from its start"),
    limit: int = typer.Option(None, min=1, help="stop after this many transitions shown"),
    duration: float = typer.Option(None, min=0.1, help="stop after this many seconds"),
    bootstrap: BootstrapOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Follow vigil.alerts: one line per alert transition (Ctrl-C to stop)."""
    from kafka import TopicPartition
    from pydantic import TypeAdapter, ValidationError

    from vigil.cli.alert_feed import passes, render_transition, transition_json
    from vigil.cli.jsonout import emit_json as emit_line
    from vigil.cli.preflight import require_broker, settings_for
    from vigil.infra.connect import kafka_consumer
    from vigil.schemas import topics
    from vigil.schemas.alerts import Alert
    from vigil.schemas.display import ward_zone

    if min_band is not None and min_band not in BANDS:
        raise UserError(f"--min-band must be one of {', '.join(BANDS)} (got {min_band!r})")
    settings = settings_for(get_settings(), bootstrap)
    zone = ward_zone(settings.ward_timezone)
    adapter = TypeAdapter(Alert)
    require_broker(settings)
    consumer = kafka_consumer(settings, group_id=None, enable_auto_commit=False, client_id="vigil-alerts-tail")
    partitions = sorted(consumer.partitions_for_topic(topics.ALERTS) or {0})
    parts = [TopicPartition(topics.ALERTS, p) for p in partitions]
    consumer.assign(parts)
    if from_beginning:
        consumer.seek_to_beginning(*parts)
    else:
        for tp, offset in consumer.end_offsets(parts).items():
            consumer.seek(tp, offset)
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
                        console.print(render_transition(alert, explain, zone))
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


@alerts_app.command("ls")
def alerts_ls(
    ward: str = typer.Option(None, help="only this ward"),
    redis_url: RedisOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """List the active alerts (open, escalated, acknowledged) with the ids the dashboard shows."""
    from vigil.cli.alert_feed import patient_label
    from vigil.cli.alert_state import active_alerts, redis_client
    from vigil.cli.preflight import require_redis
    from vigil.schemas.display import clock, percent, ward_zone

    settings = get_settings()
    require_redis(settings, redis_url)
    zone = ward_zone(settings.ward_timezone)
    unreadable: list[str] = []
    rows = sorted(
        (v for v in active_alerts(redis_client(settings, redis_url), unreadable) if ward is None or v.ward == ward),
        key=lambda v: (-BANDS.index(v.alert.severity) if v.alert.severity in BANDS else 0, v.alert.opened_s),
    )
    table = Table(title=f"{len(rows)} active alerts (times in {settings.ward_timezone})")
    for column in ("id", "state", "severity", "ward", "patient", "opened", "NEWS2 then→now", "risk now"):
        table.add_column(column)
    for v in rows:
        a = v.alert
        state = a.state + (" (snoozed)" if a.snoozed_until_s else "")
        table.add_row(
            v.short_id,
            state,
            a.severity,
            v.ward or "–",
            patient_label(v.patient_id),
            clock(v.opened_at, zone),
            f"{_or_dash(a.opened_news2)}→{_or_dash(v.news2_now)}",
            percent(v.risk_now),
        )
    console.print(table)
    if unreadable:
        console.print(
            f"[yellow]{len(unreadable)} alert state(s) in Redis do not parse and are not listed "
            "(the worker logs alert_state.unreadable; a patient's next score writes it afresh)[/yellow]"
        )
    if json_out:
        emit_json(
            {
                "count": len(rows),
                "unreadable": len(unreadable),
                "alerts": [
                    {
                        "alert_id": v.alert.alert_id,
                        "short_id": v.short_id,
                        "state": v.alert.state,
                        "severity": v.alert.severity,
                        "ward": v.ward,
                        "patient_label": patient_label(v.patient_id),
                        "opened_at": v.opened_at.isoformat(),
                        "opened_news2": v.alert.opened_news2,
                        "news2_now": v.news2_now,
                        "risk_now": v.risk_now,
                    }
                    for v in rows
                ],
            }
        )


@alerts_app.command("ack")
def alerts_ack(
    alert_id: str = typer.Argument(
        ..., help="the alert id (`vigil alerts ls`; 6 or more characters; '#1a2b3c4d' in quotes: # starts a comment)"
    ),
    by: str = typer.Option(..., "--by", help="who acknowledges (audited)"),
    patient: str = typer.Option(None, "--patient", help="check that the alert is this patient's"),
    resolve: bool = typer.Option(False, "--resolve", help="resolve instead of acknowledge"),
    snooze: int = typer.Option(None, "--snooze", min=1, help="snooze this many minutes (needs --note with the reason)"),
    note: str = typer.Option(None, help="free-text note (no patient values, please)"),
    bootstrap: BootstrapOpt = None,
    redis_url: RedisOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Acknowledge (or --resolve, or --snooze MIN) an active alert: checks it exists, then publishes
    an AlertAck on vigil.alerts.acks."""
    from pydantic import ValidationError

    from vigil.cli.alert_state import find_alert, redis_client
    from vigil.cli.preflight import require_broker, require_redis, settings_for
    from vigil.infra.connect import kafka_producer
    from vigil.infra.logging import configure_logging, get_logger, patient_hash
    from vigil.schemas import topics
    from vigil.schemas.alerts import AlertAck

    # the audit line on stderr, as JSON through the PHI redaction: structlog's defaults printed it on
    # stdout, before the --json summary a script reads
    configure_logging()
    if resolve and snooze is not None:
        raise UserError("choose one of --resolve and --snooze")
    action: Literal["acknowledge", "resolve", "snooze"] = (
        "resolve" if resolve else "snooze" if snooze is not None else "acknowledge"
    )
    settings = settings_for(get_settings(), bootstrap)
    require_redis(settings, redis_url)
    found = find_alert(redis_client(settings, redis_url), alert_id, patient)
    try:
        ack = AlertAck(
            alert_id=found.alert.alert_id,
            patient_id=found.patient_id,
            action=action,
            by=by,
            at=datetime.now(UTC),
            note=note,
            snooze_min=snooze,
        )
    except ValidationError as exc:
        raise UserError(f"invalid acknowledgement: {exc.errors(include_input=False)[0]['msg']}") from exc
    require_broker(settings)
    producer = kafka_producer(settings, retries=5, client_id="vigil-alerts-ack")
    try:
        future = producer.send(topics.ALERT_ACKS, key=ack.patient_id.encode(), value=ack.model_dump_json().encode())
        meta = future.get(timeout=30)
    finally:
        producer.close(timeout=5)
    get_logger("vigil.cli").info(
        "alert_ack",
        user=by,
        action=action,
        alert_id=ack.alert_id,
        patient_hash=patient_hash(ack.patient_id),
        source="cli",
    )
    console.print(
        f"{action} {found.short_id} by {by} -> {topics.ALERT_ACKS}[{meta.partition}]@{meta.offset}", highlight=False
    )
    if json_out:
        emit_json(
            {
                "alert_id": ack.alert_id,
                "short_id": found.short_id,
                "action": action,
                "by": by,
                "at": ack.at.isoformat(),
                "topic": topics.ALERT_ACKS,
                "partition": meta.partition,
                "offset": meta.offset,
            }
        )


def _or_dash(value: object) -> str:
    return "–" if value is None else str(value)


def register(app: typer.Typer) -> None:
    app.add_typer(alerts_app, name="alerts")
