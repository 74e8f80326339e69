"""``vigil demo``: real ICU stays through the real pipeline, with measured accounting."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from vigil.cli.signals import stop_on_signals
from vigil.infra.connect import kafka_producer
from vigil.infra.dataset import resolve_dataset
from vigil.infra.logging import patient_hash
from vigil.infra.ports import free_port
from vigil.infra.readback import TopicReader, payload_digest
from vigil.infra.replay import Stay, discharge_event, encounter_event, pick_stays, stay_events
from vigil.infra.secrets import write_private
from vigil.infra.settings import Settings
from vigil.infra.stack import stack_up
from vigil.infra.workers import SupervisedWorker
from vigil.schemas import topics
from vigil.schemas.codes import CANCEL_DISCHARGE, DISCHARGE, TRANSFER_OUT
from vigil.schemas.errors import UserError

WARDS = ("ICU-A", "ICU-B")
ERROR_CANCELLED_AFTER_H = 2  # a discharge entered in error (mid-stay) is cancelled this much later


def bad_inputs(n: int, now: datetime) -> list[tuple[bytes, bytes]]:
    """Malformed events an EHR integration really sends; every one must reach the dead letters."""
    samples: list[bytes] = [
        b"{not json",
        json.dumps(
            {
                "patient_id": "demo-bad",
                "observed_at": now.isoformat(),
                "kind": "vital",
                "code": "HR",
                "value": 80,
                "unit": "furlongs",
            }
        ).encode(),
        json.dumps(
            {
                "patient_id": "demo-bad",
                "observed_at": now.isoformat(),
                "kind": "vital",
                "code": "HR",
                "value": 9000,
                "unit": "/min",
            }
        ).encode(),
        json.dumps(
            {
                "patient_id": "demo-bad",
                "observed_at": now.isoformat(),
                "kind": "vital",
                "code": "Mystery",
                "value": 1,
                "unit": "",
            }
        ).encode(),
        json.dumps({"patient_id": "demo-bad", "kind": "vital", "code": "HR", "value": "fast"}).encode(),
        json.dumps(
            {
                "patient_id": "demo-bad",
                "observed_at": (now + timedelta(days=2)).isoformat(),
                "kind": "vital",
                "code": "HR",
                "value": 80,
                "unit": "/min",
            }
        ).encode(),
    ]
    out = []
    for i in range(n):
        base = samples[i % len(samples)]
        # make each payload unique so the accounting can match it byte for byte
        payload = base if i < len(samples) else base + b" " * (i // len(samples))
        out.append((b"demo-bad", payload))
    return out


@dataclass
class DemoPlan:
    stays: list[Stay]
    messages: list[tuple[int, bytes, bytes]]  # (hour, key, value) in send order
    event_ids: set[str]
    bad_digests: set[str]


def discharged(stay: Stay) -> bool:
    """May leave in the demo: a stay that never became septic (``vigil.stays``); the septic ones stay
    on view. Every second such stay is discharged (``plan_demo``), as every stay ends, now."""
    return not stay.septic


LEAVE_EVERY_H = 4  # the stays that leave do so this many hours apart, the last one at the replay's end


def stay_start(now: datetime, stay: Stay, ends_before_h: int = 0) -> datetime:
    """The start of the stay's file's row 0, such that the stay ends ``ends_before_h`` hours before now: its
    last row half an hour before that hour (an hour's start: the worker's hours are the wall clock's,
    ``models.window``), its discharge on it. The stays on view end now; the ones that leave are spread
    over the replay's last hours (``LEAVE_EVERY_H``), so the ward sees patients go while it watches.
    Every stay began with the longest before: the others ended days before the replay did, and their
    cards read stale (nothing observed for 2 h) with 'Latest (…)' alerts, 29 of 30; ended all at once,
    every discharge came in the replay's last instant."""
    return now - timedelta(hours=len(stay.matrix) + ends_before_h)


def plan_demo(stays: list[Stay], bad: int) -> DemoPlan:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    timed: list[tuple[datetime, int, bytes, bytes]] = []
    ids: set[str] = set()
    run = now.strftime("%m%d%H") + secrets.token_hex(2)  # each demo run admits new patients
    # every second stay that may leave does: the ward keeps calm patients beside the septic ones;
    # every second of those is moved out of the unit to a ward (``transfer_out``), the others go home
    leaves = [s.patient_id for s in stays if discharged(s)][::2]
    leaving, moved = set(leaves), set(leaves[1::2])
    # one septic patient is discharged in error halfway through the stay; the monitors send on and
    # ADT^A13 cancels it two hours later: the stay resumes with its history (models.stays.resume)
    in_error = next((s.patient_id for s in stays if s.septic and len(s.matrix) >= 12), None)
    ends_before_h = {pid: LEAVE_EVERY_H * (len(leaves) - 1 - j) for j, pid in enumerate(leaves)}
    starts = {s.patient_id: stay_start(now, s, ends_before_h.get(s.patient_id, 0)) for s in stays}
    first = min(starts.values())
    for i, stay in enumerate(stays):
        base = starts[stay.patient_id]
        replay_hour = int((base - first).total_seconds() // 3600)  # the replay's hour of the file's row 0
        admitted = Stay(f"{stay.patient_id}-{run}", stay.matrix, stay.static, stay.labels)
        events = list(stay_events(admitted, base, ward=WARDS[i % len(WARDS)]))
        if stay.patient_id in leaving:
            how = TRANSFER_OUT if stay.patient_id in moved else DISCHARGE
            events.append(discharge_event(admitted, base, ward=WARDS[i % len(WARDS)], code=how))
        if stay.patient_id == in_error:
            half = len(stay.matrix) // 2
            events.append(encounter_event(admitted, base, half, DISCHARGE, WARDS[i % len(WARDS)], minutes=45))
            events.append(encounter_event(admitted, base, half + ERROR_CANCELLED_AFTER_H, CANCEL_DISCHARGE, minutes=45))
        for hour, event in events:
            ids.add(event.event_id)
            timed.append(
                (event.observed_at, replay_hour + hour, admitted.patient_id.encode(), event.model_dump_json().encode())
            )
    timed.sort(key=lambda m: m[0])  # in time order, patients interleaved, like a real ward (stable: a stay's own order)
    messages = [(hour, key, value) for _, hour, key, value in timed]
    bad_msgs = bad_inputs(bad, now)
    step = max(1, len(messages) // (len(bad_msgs) + 1))
    for j, (key, value) in enumerate(bad_msgs):
        pos = min(len(messages), (j + 1) * step)
        messages.insert(pos, (messages[pos - 1][0] if pos else 0, key, value))
    return DemoPlan(stays, messages, ids, {payload_digest(v) for _, v in bad_msgs})


def _table(sent: int, total: int, rb: Any, elapsed: float) -> Table:
    table = Table(title="PhysioNet 2019 ICU stays: Kafka -> Faust -> Redis -> ONNX")
    for col in ("sent", "scores", "alerts", "dead letters", "events/s"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{sent}/{total}",
        str(rb.scores),
        str(rb.alerts),
        str(rb.dead_letters),
        f"{sent / elapsed:,.0f}" if elapsed > 0 else "-",
    )
    return table


@contextmanager
def live_progress(console: Console, first: Table, transient: bool) -> Iterator[Live]:
    """A Live table that leaves its last state behind (unless ``transient``) on a line of its own.
    Off a terminal (``make demo | tee``, CI logs) rich 15 ends it without a newline, so the next
    print continued its bottom border (Textualize/rich#4192)."""
    try:
        with Live(first, console=console, refresh_per_second=4, transient=transient) as live:
            yield live
    finally:  # a stop (Ctrl-C, SIGTERM) or an error too: its line must not follow the border
        if not transient and not console.is_terminal:
            console.line()


def demo_user(settings: Settings) -> tuple[str, str, Path]:
    """The demo clinician, in the users file ``vigil serve`` reads (settings.users_file or
    <home>/users.json), so a later ``vigil serve`` signs the same user in. The password is generated
    once and kept in <home>/demo-credentials.txt (0600)."""
    from vigil.agents.web.auth import add_user, load_users

    users_file = settings.users_file or settings.home / "users.json"
    creds = settings.home / "demo-credentials.txt"
    if not creds.exists() or "demo" not in load_users(users_file, env={}):
        password = secrets.token_urlsafe(12)
        add_user(users_file, "demo", password, "clinician")
        creds.parent.mkdir(parents=True, exist_ok=True)
        write_private(creds, f"demo {password}\n".encode())  # never a moment at 0644
    user, password = creds.read_text().split()
    return user, password, users_file


def start_dashboard(settings: Settings, port: int, console: Console) -> Any:
    """The ward dashboard beside the demo (the port is checked before anything is announced)."""
    from vigil.agents.web.app import create_app
    from vigil.agents.web.auth import UserDirectory
    from vigil.agents.web.kafka_feed import KafkaWardFeed
    from vigil.agents.web.server import ServerThread
    from vigil.cli.preflight import require_free_port

    require_free_port("127.0.0.1", port)
    user, password, users_file = demo_user(settings)
    feed = KafkaWardFeed(settings)
    # the users file `vigil serve` reads, re-read when it changes (`vigil users remove` ends sessions)
    server = ServerThread(create_app(settings, feed, users=UserDirectory(users_file)), port=port).start()
    console.print(f"Dashboard: {server.url}/  (sign in as [bold]{user}[/] / [bold]{password}[/])")
    return server


# more unread events than a demo ever leaves behind (40 stays are ~15,000): the demo's worker would
# spend minutes on someone else's records and report the demo's own events as lost
DEMO_BACKLOG_LIMIT = 50_000


def refuse_backlog(settings: Settings) -> None:
    """Stop before replaying when the worker group has a large unread backlog (e.g. an earlier bench)."""
    from vigil.infra.backlog import group_backlog

    backlog = group_backlog(settings, settings.app_id, topics.EVENTS_RAW)
    if backlog > DEMO_BACKLOG_LIMIT:
        where = "`vigil stack down --wipe`" if settings.kafka.bootstrap is None else "a broker of its own"
        raise UserError(
            f"the broker holds {backlog:,} events on {topics.EVENTS_RAW} that the worker group "
            f"'{settings.app_id}' has not read (an earlier `vigil bench`?); the demo's worker would have to "
            f"score them first: run the demo with a fresh VIGIL_HOME or after {where}"
        )


@stop_on_signals()
def run_demo(
    settings: Settings,
    patients: int,
    speed: float,
    duration: float | None,
    bad: int,
    console: Console,
    quiet: bool = False,
    serve_port: int | None = None,
    keep: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Replay, account and summarise; with ``keep``, call it with the summary while the worker and
    the dashboard still run (it returns when the user stops the demo). SIGTERM/SIGHUP end it like Ctrl-C."""
    source = resolve_dataset(settings.data_dir, settings.home)  # before anything starts: a clear error
    if serve_port:
        from vigil.cli.preflight import require_free_port

        require_free_port("127.0.0.1", serve_port)
    t_start = time.monotonic()
    stack_up(settings)
    stack_s = time.monotonic() - t_start
    refuse_backlog(settings)
    server = start_dashboard(settings, serve_port, console) if serve_port else None
    if source.kind == "sample":
        console.print(
            f"Data: the {source.stays}-stay sample of PhysioNet 2019 set A shipped in {source.path} "
            "(ODbL 1.0; `vigil data fetch` downloads the full sets)"
        )
    stays = pick_stays(source.path, patients)
    plan = plan_demo(stays, bad)
    reader = TopicReader(settings).start()
    metrics_port = settings.metrics_port or free_port()
    drift: dict[str, dict[str, float]] = {}
    worker: SupervisedWorker | None = None
    producer: Any = None
    try:
        worker = start_demo_worker(settings, metrics_port)
        if not quiet:
            console.print(f"Worker metrics: http://127.0.0.1:{metrics_port}/metrics")
        producer = kafka_producer(settings, linger_ms=5, max_in_flight_requests_per_connection=1, retries=10)
        sent = 0
        t0 = time.time()
        deadline = t0 + duration if duration else None
        last_hour = -1
        with live_progress(console, _table(0, len(plan.messages), reader.snapshot(), 0), quiet) as live:
            for hour, key, value in plan.messages:
                if deadline and time.time() > deadline:
                    break
                if hour != last_hour and speed > 0:
                    # speed = patient-hours replayed per wall second
                    target = t0 + (hour + 1) / speed
                    while time.time() < target:
                        worker.check()
                        live.update(_table(sent, len(plan.messages), reader.snapshot(), time.time() - t0))
                        time.sleep(min(0.1, max(0.0, target - time.time())))
                    last_hour = hour
                producer.send(topics.EVENTS_RAW, key=key, value=value)
                sent += 1
                if sent % 500 == 0:
                    worker.check()
                    live.update(_table(sent, len(plan.messages), reader.snapshot(), time.time() - t0))
            producer.flush()
            produce_s = time.time() - t0
            sent_ids = {
                json.loads(v)["event_id"]
                for _, _, v in plan.messages[:sent]
                if payload_digest(v) not in plan.bad_digests
            }
            sent_bad = {payload_digest(v) for _, _, v in plan.messages[:sent]} & plan.bad_digests
            wait_until = time.time() + 120
            while time.time() < wait_until:
                worker.check()
                rb = reader.snapshot()
                ok, badc = rb.accounted(sent_ids, sent_bad)
                live.update(_table(sent, len(plan.messages), rb, time.time() - t0))
                if ok == len(sent_ids) and badc == len(sent_bad):
                    break
                time.sleep(0.25)
            done_s = time.time() - t0
        drift, served = worker_drift(metrics_port)  # the worker's own /metrics, before it stops
        rb = reader.snapshot()
        summary = _summary(
            rb, sent, sent_ids, sent_bad, len(stays), stack_s, t0, produce_s, done_s, metrics_port, drift
        )
        summary["alert_threshold"] = served
        summary["worker_restarts"] = worker.restarts
        if not quiet:
            _print_summary(console, summary, rb)
        if keep is not None:
            keep(summary)
    finally:  # a stop (Ctrl-C, SIGTERM), a worker that died, a producer that could not connect
        if producer is not None:
            producer.close()
        if worker is not None:
            worker.stop()
        reader.stop()
        if server is not None:
            server.stop()
    return summary


def start_demo_worker(settings: Settings, metrics_port: int) -> SupervisedWorker:
    """The demo's worker, started again if it leaves its group (exit 75: a partition it stopped
    reading or an event loop that stopped running, agents/progress.py, agents/loop.py); any other
    exit stops the demo at its next ``check`` with the exit code and the log. It serves /metrics on
    ``metrics_port`` and no readiness port: the demo reads the one, and a ``VIGIL_HEALTH_PORT``
    meant for another worker on this machine would stop the demo's at start (exit 2)."""
    return SupervisedWorker(
        settings,
        settings.home / "logs" / "demo-worker.log",
        {"VIGIL_METRICS_PORT": str(metrics_port), "VIGIL_HEALTH_PORT": None},
        who="the demo's worker",
    )


def _summary(
    rb: Any,
    sent: int,
    sent_ids: set[str],
    sent_bad: set[str],
    patients: int,
    stack_s: float,
    t0: float,
    produce_s: float,
    done_s: float,
    metrics_port: int,
    drift: dict[str, dict[str, float]],
) -> dict[str, Any]:
    ok, badc = rb.accounted(sent_ids, sent_bad)
    lat = sorted(rb.latencies_ms)
    return {
        "events": sent,
        "patients": patients,
        "scores": rb.scores,
        "alerts": rb.alerts,
        "alerts_opened": rb.alert_states.get("open", 0),
        "dead_letters": rb.dead_letters,
        "dead_letter_reasons": dict(rb.dead_letter_reasons),
        "stays_ended": rb.stays_ended,
        "stays_transferred": sum(1 for r in rb.stay_records if r.get("ended_by") == "transfer_out"),
        "stays_resumed": rb.stays_resumed,
        "lost": (len(sent_ids) - ok) + (len(sent_bad) - badc),
        "stack_start_s": round(stack_s, 2),
        "time_to_first_alert_s": round(rb.first_alert_at - t0, 2) if rb.first_alert_at else None,
        "events_per_s": round(sent / done_s, 1) if done_s else None,
        "produce_s": round(produce_s, 2),
        "drain_s": round(done_s, 2),
        "p50_ms": lat[len(lat) // 2] if lat else None,
        "p99_ms": lat[int(len(lat) * 0.99)] if lat else None,
        "worker_metrics_port": metrics_port,
        "drift": drift,
    }


def worker_drift(port: int) -> tuple[dict[str, dict[str, float]], dict[str, float | str]]:
    """Each ward's input drift as the worker's /metrics shows it (``vigil_drift_*``; agents/drift.py),
    with its closed patient-hours, the share of them at alert level (``vigil_closed_hours_total``) and
    their mean combined risk (``vigil_closed_hours_risk_total``: what ``VIGIL_SITE__MEAN_RISK`` is
    measured as); and the served bundle's version and alert threshold (``vigil_bundle_info``,
    ``vigil_alert_threshold*``)."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:  # noqa: S310 - loopback
            text = response.read().decode()
    except OSError:
        return {}, {}
    wards: dict[str, dict[str, float]] = {}
    names = {
        "vigil_drift_max_psi": "max_psi",
        "vigil_drift_drifted": "drifted",
        "vigil_drift_patient_hours": "hours",
        "vigil_drift_threshold": "psi_cutoff",
    }
    closed: dict[str, dict[str, float]] = {}
    risk: dict[str, float] = {}
    served: dict[str, float | str] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in names:
                wards.setdefault(sample.labels["ward"], {})[names[sample.name]] = round(sample.value, 4)
            elif sample.name == "vigil_closed_hours_total":
                closed.setdefault(sample.labels["ward"], {})[sample.labels["above_threshold"]] = sample.value
            elif sample.name == "vigil_closed_hours_risk_total":
                risk[sample.labels["ward"]] = sample.value
            elif sample.name == "vigil_alert_threshold":
                served["threshold"] = round(sample.value, 6)
            elif sample.name == "vigil_alert_threshold_training_share":
                served["training_share"] = round(sample.value, 4)
            elif sample.name == "vigil_training_mean_risk":
                served["training_mean_risk"] = round(sample.value, 5)
            elif sample.name == "vigil_bundle_info" and sample.value == 1:
                served["bundle"] = sample.labels["version"]
    for ward, c in closed.items():
        total = c.get("0", 0.0) + c.get("1", 0.0)
        wards.setdefault(ward, {}).update(
            closed_hours=total,
            alert_share=round(c.get("1", 0.0) / total, 4) if total else 0.0,
            mean_risk=round(risk.get(ward, 0.0) / total, 5) if total else 0.0,
        )
    return wards, served


def _print_summary(console: Console, s: dict[str, Any], rb: Any) -> None:
    console.rule("Vigil demo summary")
    console.print(
        f"{s['patients']} ICU stays, {s['events']} events in {s['drain_s']} s "
        f"({s['events_per_s']} events/s); stack up in {s['stack_start_s']} s"
    )
    console.print(
        f"{s['scores']} risk scores, {s['alerts']} alert transitions "
        f"({s['alerts_opened']} opened), first alert after {s['time_to_first_alert_s']} s"
    )
    console.print(f"{s['dead_letters']} dead letters {s['dead_letter_reasons']}; lost: {s['lost']}")
    if s.get("worker_restarts"):
        console.print(
            f"the worker left its group {s['worker_restarts']} time(s), having stopped reading, and was started "
            "again: logs/demo-worker.log, consumer.stalled or worker.loop_blocked"
        )
    console.print(
        f"{s['stays_ended']} stays ended ({s['stays_ended'] - s['stays_transferred']} discharged, "
        f"{s['stays_transferred']} moved out of the unit to a ward: their alerts resolved, off the ward view); "
        f"{s['stays_resumed']} discharge entered in error cancelled (ADT^A13: the stay resumed with its history)"
    )
    served = s.get("alert_threshold", {})
    if served:
        console.print(
            f"bundle {served.get('bundle', '?')}, alert threshold {served.get('threshold', 0.0):.4f} (flags "
            f"{100 * served.get('training_share', 0.0):.1f} % of set-A hours; set A's mean risk "
            f"{served.get('training_mean_risk', 0.0):.4f}; docs/operations.md)"
        )
    for ward, d in s["drift"].items():
        # the cut-off: the 99th percentile of training wards of as many patients (models/drift.py)
        state = "DRIFTED from the training data" if d.get("drifted") else "within the training data's range"
        psi, cutoff = float(d.get("max_psi", 0.0)), float(d.get("psi_cutoff", 0.0))
        console.print(
            f"  ward {ward}: inputs {state} (largest PSI {psi:.2f}, cut-off {cutoff:.2f} for its number of "
            f"patients; {int(d.get('hours', 0))} patient-hours); "
            f"{100 * d.get('alert_share', 0.0):.1f} % of {int(d.get('closed_hours', 0))} closed hours at alert level, "
            f"mean risk {d.get('mean_risk', 0.0):.4f}"
        )
    for alert in rb.alert_records[:8]:
        # the dashboard's short alert id; patients by their keyed hash (a terminal is screen-shared)
        console.print(
            f"  #{alert['alert_id'][:8]} [bold]{alert['state']:>9}[/] {alert['severity']:>10}  "
            f"pt:{patient_hash(alert['patient_id'])[:8]} hour {alert['hour']:>3}  {alert['reason']}",
            highlight=False,
            no_wrap=True,
            overflow="ellipsis",
        )
