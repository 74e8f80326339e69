"""Alert agent: acknowledgements in (``vigil.alerts.acks``), and the wall-clock timer that escalates
unacknowledged alerts and ends snoozes. Scores raise, escalate and resolve alerts in the scoring
step itself (``agents.scoring``), in the batch that scored them; both change a patient's lifecycle
in Redis only while holding the worker's ``alert_lock``."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import faust
from pydantic import ValidationError

from vigil.agents.alert_out import publish_alerts
from vigil.agents.app import acks_topic, app, audit_topic, deadletter_topic
from vigil.agents.runtime import Publisher, batches, run_batch, runtime
from vigil.infra.redis import alert_key
from vigil.models.alerting import PatientAlertState, check_escalation, on_ack
from vigil.schemas.alerts import Alert, AlertAck
from vigil.schemas.deadletter import Rejected


async def ack_batch(acks: Sequence[AlertAck], publisher: Publisher) -> list[Alert]:
    """Apply acknowledgements to the patients' lifecycles; publish before persisting (a crash in
    between replays the batch and re-publishes the same transitions, same ``transition_id``)."""
    rt = runtime()
    pids = sorted({ack.patient_id for ack in acks})
    async with rt.alert_lock:
        blobs = await rt.store.load_blobs([alert_key(p) for p in pids])
        states = {pid: PatientAlertState.from_bytes(blob) for pid, blob in zip(pids, blobs, strict=True)}
        out = [alert for ack in acks for alert in on_ack(states[ack.patient_id], ack)]
        await publish_alerts(publisher, out)
        await publisher.flush()
        await rt.store.save_alerts({alert_key(p): states[p] for p in pids})
    return out


@app.agent(acks_topic)
async def alert_acks(stream: faust.StreamT) -> None:
    async for batch in batches(stream, 100):
        await run_batch(batch, ack_events, deadletter_topic, "alert.acks")


async def ack_events(batch: Sequence[faust.EventT], publisher: Publisher) -> None:
    good: list[AlertAck] = []
    for event in batch:
        try:
            good.append(AlertAck.model_validate_json(event.message.value or b""))
        except (ValidationError, ValueError):
            await publisher.dead_letter(event, Rejected("schema", "not a valid record for this topic"))
    for ack in good:
        audit = {
            "type": "alert_ack",
            "alert_id": ack.alert_id,
            "action": ack.action,
            "by": ack.by,
            "at": ack.at.isoformat(),
        }
        await publisher.send(audit_topic, None, json.dumps(audit).encode())
    if good:
        await ack_batch(good, publisher)


@app.timer(interval=30.0)
async def escalate_unacknowledged() -> None:
    """Open alerts nobody acknowledged within the configured time escalate; snoozes end (wall clock)."""
    rt = runtime()
    publisher = Publisher(deadletter_topic)
    async with rt.alert_lock:
        keys = await rt.store.open_alert_keys()
        if not keys:
            return
        blobs = await rt.store.load_blobs(keys)
        now_s = time.time()
        changed: dict[str, PatientAlertState] = {}
        for key, blob in zip(keys, blobs, strict=True):
            state = PatientAlertState.from_bytes(blob)
            alerts = check_escalation(state, now_s, rt.policy)
            if alerts:
                changed[key] = state  # saved with its key in or out of the timer's set
                await publish_alerts(publisher, alerts)
        await publisher.flush()
        if changed:
            await rt.store.save_alerts(changed)
