"""Ingest agent: raw bytes -> validated canonical events on ``vigil.events``, or dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import faust

from agents.app import app, deadletter_topic, events_raw_topic, events_topic
from agents.runtime import Publisher, batches, run_batch
from infra import metrics
from schemas.deadletter import Rejected
from schemas.normalize import decode_raw_event


async def ingest_batch(batch: Sequence[faust.EventT], publisher: Publisher) -> None:
    now = datetime.now(UTC)
    for event in batch:
        message = event.message
        metrics.EVENTS_IN.labels(message.topic).inc()
        result = decode_raw_event(message.value, now)
        if isinstance(result, Rejected):
            await publisher.dead_letter(deadletter_topic, result, message.value, message.topic,
                                        message.partition, message.offset, key=message.key)
            continue
        metrics.EVENTS_ACCEPTED.inc()
        await publisher.send(events_topic, result.patient_id, result.model_dump_json().encode())


@app.agent(events_raw_topic)
async def ingest(stream: faust.StreamT) -> None:
    # take_events acks the batch only when the loop asks for the next one, i.e. after the
    # publisher has confirmed delivery of every output of this batch (at-least-once).
    async for batch in batches(stream):
        await run_batch(batch, ingest_batch, deadletter_topic, "ingest")
