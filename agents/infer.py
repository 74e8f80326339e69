"""State + inference: apply a batch's accepted events to each patient's Redis window, score every
patient the batch touched (rules + batched ONNX models) and publish one risk score per patient."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

import faust

from vigil.agents.app import scores_topic
from vigil.agents.runtime import ModelInput, Publisher, runtime
from vigil.infra import metrics
from vigil.infra.logging import get_logger
from vigil.models.scoring import PendingUpdate, build_risk_score
from vigil.models.window import LateEvent
from vigil.schemas.deadletter import Rejected
from vigil.schemas.events import PatientEvent

log = get_logger(__name__)


def kafka_timestamp_ms(message: faust.types.tuples.Message) -> int | None:
    """Producer timestamp of the message (faust gives seconds as a float)."""
    ts = message.timestamp
    return int(ts * 1000) if ts else None


async def score_events(parsed: Sequence[tuple[faust.EventT, PatientEvent]], publisher: Publisher) -> int:
    """Apply, score, publish, then persist. The window is written only after the scores are
    delivered, so a redelivered event either finds its state absent (crash before the write: it is
    scored again, an at-least-once duplicate) or present (its message position is in the window:
    skipped, its score is already out). A new message that changes nothing is a ``duplicate`` dead
    letter. Never lost."""
    rt = runtime()
    if not parsed:
        return 0
    t0 = time.perf_counter()
    windows = await rt.store.load_windows({p.patient_id for _, p in parsed})
    metrics.REDIS_SECONDS.observe(time.perf_counter() - t0)
    updates: dict[str, PendingUpdate] = {}
    for event, patient_event in parsed:
        pid, m = patient_event.patient_id, event.message
        window = windows[pid]
        redelivered = window.seen(m.partition, m.offset)
        window.advance(m.partition, m.offset)
        try:
            changed = window.apply(patient_event)
        except LateEvent as exc:
            await publisher.dead_letter(event, Rejected("outside_window", str(exc)))
            continue
        if not changed:
            if not redelivered:
                # a twin (new message, same patient, time, code and value): nothing to score, but
                # counted on the dead letters, never skipped silently (issue 16). A redelivered
                # message (at-least-once) is skipped: its score is already out.
                detail = f"{patient_event.code}: same patient, time and value as an event already applied"
                await publisher.dead_letter(event, Rejected("duplicate", detail))
            continue
        update = updates.setdefault(pid, PendingUpdate(pid))
        update.add(
            patient_event.event_id,
            patient_event.observed_at,
            kafka_timestamp_ms(m),
            patient_event.encounter,
            patient_event.ward,
        )
    pids = list(updates)
    t_apply = time.perf_counter()
    inputs = [ModelInput(windows[p].matrix(), windows[p].statics()) for p in pids]
    try:
        model_scores = await rt.batcher.infer_many(inputs)
    except Exception as exc:  # a model failure must not lose the rule scores or stop the partition
        log.error("models.failed", error=type(exc).__name__)
        model_scores = [[] for _ in pids]
    t_infer = time.perf_counter()
    now = datetime.now(UTC)
    for pid, models in zip(pids, model_scores, strict=True):
        score = build_risk_score(windows[pid], updates[pid], models, now)
        await publisher.send(scores_topic, pid, score.model_dump_json().encode())
        metrics.SCORES.inc()
    t_build = time.perf_counter()
    await publisher.flush()
    t1 = time.perf_counter()
    await rt.store.save_windows({pid: windows[pid] for pid in updates})
    metrics.REDIS_SECONDS.observe(time.perf_counter() - t1)
    # one canonical line per batch (counts and timings only: no identifiers, no values)
    log.info(
        "batch.scored",
        events=len(parsed),
        patients=len(pids),
        load_apply_ms=_ms(t0, t_apply),
        infer_ms=_ms(t_apply, t_infer),
        build_ms=_ms(t_infer, t_build),
        deliver_ms=_ms(t_build, t1),
        save_ms=_ms(t1, time.perf_counter()),
    )
    return len(pids)


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)
