"""EHR intake agents: FHIR R4 JSON on ``vigil.ingest.fhir`` and HL7v2 ORU^R01 on
``vigil.ingest.hl7v2`` become canonical events on ``vigil.events``; every rejected part goes to
the dead letters with the reason and the original message bytes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial

import faust

from vigil.agents.app import app, deadletter_topic, events_raw_topic, ingest_fhir_topic, ingest_hl7v2_topic
from vigil.agents.runtime import Publisher, batches, run_batch
from vigil.infra import metrics
from vigil.schemas.codecs.fhir import decode_fhir
from vigil.schemas.codecs.hl7v2 import decode_hl7v2
from vigil.schemas.codecs.loinc import DecodeResult
from vigil.schemas.deadletter import Rejected
from vigil.schemas.normalize import normalize_event


async def interop_batch(
    batch: Sequence[faust.EventT], publisher: Publisher, decode: Callable[[bytes], DecodeResult]
) -> None:
    now = datetime.now(UTC)
    for event in batch:
        m = event.message
        metrics.EVENTS_IN.labels(m.topic).inc()
        result = decode(m.value or b"")
        rejected = list(result.rejected)
        for patient_event in result.events:
            checked = normalize_event(patient_event, now)  # range, clock skew: same rules as JSON intake
            if isinstance(checked, Rejected):
                rejected.append(checked)
                continue
            metrics.EVENTS_ACCEPTED.inc()
            # into the one intake topic: ingest validates, publishes vigil.events and scores
            await publisher.send(events_raw_topic, checked.patient_id, checked.model_dump_json().encode())
        for item in result.ignored:
            metrics.INTEROP_IGNORED.labels(item.reason).inc()
        for code, count in result.unknown_codes.items():
            metrics.UNKNOWN_CODES.labels(code[:80]).inc(count)
        for item in rejected:
            await publisher.dead_letter(event, item)


@app.agent(ingest_fhir_topic)
async def ingest_fhir(stream: faust.StreamT) -> None:
    async for batch in batches(stream, 200):
        await run_batch(batch, partial(interop_batch, decode=decode_fhir), deadletter_topic, "interop.fhir")


@app.agent(ingest_hl7v2_topic)
async def ingest_hl7v2(stream: faust.StreamT) -> None:
    async for batch in batches(stream, 200):
        await run_batch(batch, partial(interop_batch, decode=decode_hl7v2), deadletter_topic, "interop.hl7v2")
