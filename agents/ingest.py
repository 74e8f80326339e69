"""Ingest agent: raw events in; each is validated and normalized (or dead-lettered with its
original bytes and the reason) and scored in the same batch (``agents.scoring.score_events``): one
consume per event, not two (docs/performance.md has the measurement behind that choice). With
``VIGIL_PUBLISH_EVENTS=true`` the canonical copy of each event is also published on
``vigil.events``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import faust

from vigil.agents.app import app, deadletter_topic, events_raw_topic, events_topic, settings
from vigil.agents.runtime import Publisher, batches, run_batch, when_done
from vigil.agents.scoring import score_events
from vigil.infra import metrics
from vigil.schemas.deadletter import Rejected
from vigil.schemas.events import PatientEvent
from vigil.schemas.normalize import decode_raw_event


async def ingest_batch(batch: Sequence[faust.EventT], publisher: Publisher) -> list[tuple[faust.EventT, PatientEvent]]:
    now = datetime.now(UTC)
    accepted: list[tuple[faust.EventT, PatientEvent]] = []
    for event in batch:
        message = event.message
        when_done(metrics.EVENTS_IN.labels(message.topic).inc)  # once the batch is done: not per attempt
        result = decode_raw_event(message.value, now, settings.ingest.max_event_bytes)
        if isinstance(result, Rejected):
            await publisher.dead_letter(event, result)
            continue
        when_done(metrics.EVENTS_ACCEPTED.inc)
        if settings.publish_events:
            await publisher.send(events_topic, result.patient_id, result.model_dump_json().encode())
        accepted.append((event, result))
    return accepted


async def ingest_and_score(batch: Sequence[faust.EventT], publisher: Publisher) -> None:
    await score_events(await ingest_batch(batch, publisher), publisher)


@app.agent(events_raw_topic)
async def ingest(stream: faust.StreamT) -> None:
    # take_events acks the batch only when the loop asks for the next one, i.e. after every
    # output of this batch is delivered and the patients' windows are written (at-least-once).
    async for batch in batches(stream):
        await run_batch(batch, ingest_and_score, deadletter_topic, "ingest")
