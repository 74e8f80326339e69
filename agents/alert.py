"""Alert agent: scores and acknowledgements in, alert transitions out (state in Redis)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence

import faust
from pydantic import ValidationError

from vigil.agents.app import (
    acks_topic,
    alerts_fhir_topic,
    alerts_topic,
    app,
    audit_topic,
    deadletter_topic,
    scores_topic,
)
from vigil.agents.runtime import Publisher, batches, run_batch, runtime
from vigil.infra import metrics
from vigil.infra.redis import alert_key, window_key
from vigil.models.alerting import PatientAlertState, check_escalation, needs_timer, on_ack, on_score
from vigil.models.window import PatientWindow
from vigil.schemas.alerts import Alert, AlertAck
from vigil.schemas.codecs.fhir_out import alert_to_risk_assessment
from vigil.schemas.deadletter import Rejected
from vigil.schemas.scores import RiskScore


async def _publish_alerts(publisher: Publisher, alerts: list[Alert]) -> None:
    for alert in alerts:
        await publisher.send(alerts_topic, alert.patient_id, alert.model_dump_json().encode())
        risk = alert_to_risk_assessment(alert)
        await publisher.send(alerts_fhir_topic, alert.patient_id, json.dumps(risk).encode())
        metrics.ALERTS.labels(alert.state, alert.severity).inc()


async def alert_batch(records: Sequence[tuple[str, RiskScore | AlertAck]], publisher: Publisher) -> list[Alert]:
    rt = runtime()
    pids = sorted({pid for pid, _ in records})
    keys = [alert_key(p) for p in pids]
    blobs = await rt.store.load_blobs(keys)
    states = {pid: PatientAlertState.from_bytes(blob) for pid, blob in zip(pids, blobs, strict=True)}
    out: list[Alert] = []
    for pid, record in records:
        if isinstance(record, RiskScore):
            out.extend(on_score(states[pid], record, rt.policy))
        else:
            out.extend(on_ack(states[pid], record))
    out = await explain_raised(out)
    # publish before persisting: a crash in between replays the batch and re-publishes the same
    # transitions (same transition_id, deduplicated downstream) instead of losing them
    await _publish_alerts(publisher, out)
    await publisher.flush()
    await rt.store.save_blobs({alert_key(p): states[p].to_bytes() for p in pids})
    await _track_open(pids, states)
    return out


async def explain_raised(alerts: list[Alert]) -> list[Alert]:
    """Opening or escalating an alert asks a clinician to act: attach the full explanation (tree
    contributions and the sequence model's occlusion attribution, recomputed from the patient's
    window at that moment), which the per-score path skips for speed."""
    rt = runtime()
    raised = [a for a in alerts if a.state in ("open", "escalated") and a.risk is not None]
    if not raised or rt.bundle is None:
        return alerts
    blobs = await rt.store.load_blobs([window_key(a.patient_id) for a in raised])
    explained: dict[str, Alert] = {}
    for alert, blob in zip(raised, blobs, strict=True):
        window = PatientWindow.from_bytes(blob)
        if window.anchor_s is None:
            continue
        scores = await asyncio.to_thread(rt.explain_fully, window.matrix(alert.hour), window.statics())
        combined = next((s for s in scores if s.model == "combined"), None)
        if combined is not None and combined.top_features:
            explanation = alert.explanation.model_copy(update={"top_features": combined.top_features})
            explained[alert.transition_id] = alert.model_copy(update={"explanation": explanation})
    return [explained.get(a.transition_id, a) for a in alerts]


async def _track_open(pids: list[str], states: dict[str, PatientAlertState]) -> None:
    """The alerts the wall-clock timer looks at: open (escalation) or snoozed (the snooze ends)."""
    timed = {p for p in pids if needs_timer(states[p])}
    await runtime().store.update_open_alerts(
        opened=[alert_key(p) for p in pids if p in timed], closed=[alert_key(p) for p in pids if p not in timed]
    )


def _decode(
    events: Sequence[faust.EventT], model: type[RiskScore] | type[AlertAck]
) -> tuple[list[tuple[str, RiskScore | AlertAck]], list[faust.EventT]]:
    good, bad = [], []
    for event in events:
        try:
            record = model.model_validate_json(event.message.value or b"")
            good.append((record.patient_id, record))
        except (ValidationError, ValueError):
            bad.append(event)
    return good, bad


async def _dead_letter_all(publisher: Publisher, bad: list[faust.EventT]) -> None:
    for event in bad:
        await publisher.dead_letter(event, Rejected("schema", "not a valid record for this topic"))


@app.agent(scores_topic)
async def alert_on_scores(stream: faust.StreamT) -> None:
    async for batch in batches(stream):
        await run_batch(batch, score_events, deadletter_topic, "alert")


async def score_events(batch: Sequence[faust.EventT], publisher: Publisher) -> None:
    good, bad = _decode(batch, RiskScore)
    await _dead_letter_all(publisher, bad)
    # a final score repeats what the provisional scores of its hour (and the next hour's, which
    # follows it) already told the lifecycle: alerts follow the provisional scores only
    good = [(pid, r) for pid, r in good if not (isinstance(r, RiskScore) and r.status == "final")]
    if good:
        await alert_batch(good, publisher)


@app.agent(acks_topic)
async def alert_acks(stream: faust.StreamT) -> None:
    async for batch in batches(stream, 100):
        await run_batch(batch, ack_events, deadletter_topic, "alert.acks")


async def ack_events(batch: Sequence[faust.EventT], publisher: Publisher) -> None:
    good, bad = _decode(batch, AlertAck)
    await _dead_letter_all(publisher, bad)
    if good:
        for _pid, ack in good:
            assert isinstance(ack, AlertAck)
            audit = {
                "type": "alert_ack",
                "alert_id": ack.alert_id,
                "action": ack.action,
                "by": ack.by,
                "at": ack.at.isoformat(),
            }
            await publisher.send(audit_topic, None, json.dumps(audit).encode())
        await alert_batch(good, publisher)


@app.timer(interval=30.0)
async def escalate_unacknowledged() -> None:
    """Open alerts nobody acknowledged within the configured time escalate; snoozes end (wall clock)."""
    rt = runtime()
    keys = await rt.store.open_alert_keys()
    if not keys:
        return
    blobs = await rt.store.load_blobs(keys)
    now_s = time.time()
    publisher = Publisher(deadletter_topic)
    changed: dict[str, bytes] = {}
    done: list[str] = []
    for key, blob in zip(keys, blobs, strict=True):
        state = PatientAlertState.from_bytes(blob)
        alerts = check_escalation(state, now_s, rt.policy)
        if alerts:
            changed[key] = state.to_bytes()
            done += [] if needs_timer(state) else [key]
            await _publish_alerts(publisher, alerts)
    if changed:
        await rt.store.save_blobs(changed)
    if done:
        await rt.store.update_open_alerts(opened=(), closed=done)
    await publisher.flush()
