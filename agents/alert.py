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
from vigil.agents.guard import StateMoved
from vigil.agents.runtime import Publisher, batches, run_batch, runtime, taken_when_done, when_done
from vigil.infra import metrics
from vigil.infra.logging import get_logger
from vigil.infra.redis import alert_key
from vigil.models.alerting import PatientAlertState, escalation_round, on_ack, unapplied_reason
from vigil.schemas import topics
from vigil.schemas.alerts import Alert, AlertAck
from vigil.schemas.deadletter import Rejected, invalid_record

log = get_logger(__name__)


async def ack_batch(acks: Sequence[AlertAck], publisher: Publisher) -> list[Alert]:
    """Apply acknowledgements to the patients' lifecycles; publish before persisting (a crash in
    between replays the batch and re-publishes the same transitions, same ``transition_id``). Written
    only where each lifecycle is still as read (``save_alerts_if_unchanged``): one another worker wrote
    meanwhile (a rebalance: the partition's new owner scored the patient) was written over with the
    older copy, its newer alert and count of alerts gone; the batch is handled again instead."""
    rt = runtime()
    pids = sorted({ack.patient_id for ack in acks})
    async with rt.alert_lock:
        blobs = await rt.store.load_blobs([alert_key(p) for p in pids])
        states = {pid: PatientAlertState.from_bytes(blob) for pid, blob in zip(pids, blobs, strict=True)}
        out = []
        for ack in acks:
            state = states[ack.patient_id]
            if why := unapplied_reason(state, ack):
                # counted and logged, not dead-lettered: the answer was valid, the alert moved on
                when_done(metrics.ANSWERS_UNAPPLIED.labels(why).inc)  # once its batch is done
                log.info("alert.answer_unapplied", alert_id=ack.alert_id[:8], action=ack.action, why=why)
            out.extend(on_ack(state, ack, rt.policy))
        await publish_alerts(publisher, out)
        await publisher.flush()
        read = dict(zip(pids, blobs, strict=True))
        moved = await rt.store.save_alerts_if_unchanged({alert_key(p): (read[p], states[p]) for p in pids})
        if moved:
            raise StateMoved(f"{len(moved)} alert lifecycles written by another worker meanwhile")  # retried
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
        except ValidationError as exc:
            await publisher.dead_letter(event, invalid_record(exc, "acknowledgement"))
        except ValueError:
            await publisher.dead_letter(event, Rejected("schema", "acknowledgement: not a valid record for this topic"))
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


@app.timer(interval=30.0, name="alert.escalation")
async def escalate_unacknowledged() -> None:
    """Open alerts nobody acknowledged within the configured time escalate; snoozes end (wall clock).

    Only the patients of the partitions this worker holds (``PatientAlertState.partition``): their
    answers and scores change the lifecycle here, under ``alert_lock``, so the pass cannot overwrite
    them. Every worker's timer read every open alert before, and a pass that read an alert before
    its owner applied an acknowledgement wrote the unanswered state back and paged "escalated". Its
    write still keeps a state changed since it was read (a worker whose partition moved during a
    rebalance): ``save_alerts_if_unchanged``."""
    rt = runtime()
    publisher = Publisher(deadletter_topic)
    async with rt.alert_lock:
        keys = await rt.store.open_alert_keys()
        if not keys:
            return
        owned = {tp.partition for tp in app.consumer.assignment() if tp.topic == topics.EVENTS_RAW}
        blobs = await rt.store.load_blobs(keys)
        done = escalation_round(dict(zip(keys, blobs, strict=True)), time.time(), rt.policy, owned)
        report_unreadable(done.unreadable)
        # published before written (a pass killed in between is done again, its transitions with
        # the same ids); one the write then finds superseded is counted. The transitions are counted
        # as the pass ends (``taken_when_done``): not by a pass that failed and is done again
        with taken_when_done():
            await publish_alerts(publisher, done.alerts)
            await publisher.flush()
            if done.changed:
                moved = await rt.store.save_alerts_if_unchanged({k: (done.read[k], s) for k, s in done.changed.items()})
                if moved:
                    metrics.TIMER_SUPERSEDED.inc(len(moved))
                    log.warning("alert.timer_superseded", states=len(moved))


_unreadable: set[str] = set()  # keys already named in the log (bounded: a few per damaged write)


def report_unreadable(keys: Sequence[str]) -> None:
    """An alert state that does not parse is counted on every pass and logged once per key (the key
    holds the patient's keyed hash, never the id): its patient's alert neither escalates nor ends
    its snooze until the patient's next score writes the state afresh (``infra.redis._alert_or_new``)."""
    for key in keys:
        metrics.ALERT_STATES_UNREADABLE.inc()
        if key not in _unreadable and len(_unreadable) < 10_000:
            _unreadable.add(key)
            log.error("alert_state.unreadable", key=key)
