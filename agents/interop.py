"""EHR intake agents: FHIR R4 JSON on ``vigil.ingest.fhir`` and HL7v2 (ORU^R01, ADT^A03/A13, A02/A12) on
``vigil.ingest.hl7v2`` become canonical events on ``vigil.events``; every rejected part goes to
the dead letters with the reason and the original bytes: one dead letter per message (HL7v2) or
per Bundle entry (FHIR, decoded one entry at a time), never one copy of a message per rejection,
carrying every reason of its parts, the decoder's and the intake checks', the most actionable first
(``schemas.deadletter.one_per_input``).
A message's discharge (a finished Encounter in a Bundle, or a transfer out: an ADT^A02, an
Encounter's move, read with the site's units) is sent after its other events, so the results that
came with it are scored in the stay before it ends (``models.stays``)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial

import faust

from vigil.agents.app import app, deadletter_topic, events_raw_topic, ingest_fhir_topic, ingest_hl7v2_topic, settings
from vigil.agents.runtime import Publisher, batches, run_batch, runtime, source_of, when_done
from vigil.infra import metrics
from vigil.infra.logging import get_logger
from vigil.infra.unmapped import count_unmapped
from vigil.models.stays import is_discharge
from vigil.schemas.codecs.fhir_stream import EntryOutcome, decode_fhir_stream
from vigil.schemas.codecs.hl7v2 import decode_hl7v2
from vigil.schemas.codecs.placing import Placing
from vigil.schemas.deadletter import Rejected, one_per_input
from vigil.schemas.events import PatientEvent
from vigil.schemas.normalize import normalize_event

Decoder = Callable[[bytes], Iterable[EntryOutcome]]
log = get_logger(__name__)
UNITS = settings.ingest.units()  # which results are scored, which ADT^A02 end a stay (ingest.monitored_units)
HL7_ZONE = settings.ingest.hl7_zone()  # the zone of HL7v2 times sent without an offset (ingest.hl7_timezone)


@app.task
async def say_which_transfers_end_a_stay() -> None:
    """Once at start: a site that set its monitored units (or forgot to) reads it in the worker's log."""
    log.info("intake.transfers", monitored_units=sorted(UNITS.monitored), away_units=sorted(UNITS.away))


def fhir_entries(payload: bytes) -> Iterable[EntryOutcome]:
    """A FHIR message one Bundle entry at a time (each outcome carries only its entry's bytes)."""
    return decode_fhir_stream(io.BytesIO(payload), units=UNITS)


def hl7v2_message(payload: bytes) -> Iterable[EntryOutcome]:
    result = decode_hl7v2(payload, default_tz=HL7_ZONE, units=UNITS)
    return [EntryOutcome(None, result, payload if result.rejected else b"")]


async def placed_apart(items: Iterable[EntryOutcome]) -> AsyncIterator[EntryOutcome]:
    """A FHIR message's entries, one at a time, their results placed by the Encounters earlier
    messages carried (``schemas.codecs.placing``), after keeping the units of the Encounters this
    one carries (Redis, the state's TTL): a subscription sends an Observation alone, its Encounter's
    updates apart. Used where the site names its monitored units."""
    store, placing = runtime().store, Placing()
    for item in items:
        await store.save_places(placing.carried(item.result))
        if ask := placing.to_ask(item.result):
            placing.found(await store.load_places(ask))
        yield replace(item, result=placing.place(item.result, UNITS))


async def as_is(items: Iterable[EntryOutcome]) -> AsyncIterator[EntryOutcome]:
    for item in items:
        yield item


async def interop_batch(
    batch: Sequence[faust.EventT],
    publisher: Publisher,
    decode: Decoder,
    place: Callable[[Iterable[EntryOutcome]], AsyncIterator[EntryOutcome]] = as_is,
) -> None:
    now = datetime.now(UTC)
    for event in batch:
        m = event.message
        when_done(metrics.EVENTS_IN.labels(m.topic).inc)  # once the batch is done: not per attempt
        source = source_of(event)
        ends: list[PatientEvent] = []  # a message's discharges go after its other entries
        async for item in place(decode(m.value or b"")):
            result = item.result
            rejected = list(result.rejected)
            for patient_event in result.events:
                checked = normalize_event(patient_event, now)  # range, clock skew: same rules as JSON intake
                if isinstance(checked, Rejected):
                    rejected.append(checked)
                    continue
                when_done(metrics.EVENTS_ACCEPTED.inc)
                if is_discharge(checked):
                    ends.append(checked)
                    continue
                # into the one intake topic: ingest validates, publishes vigil.events and scores
                await publisher.send(events_raw_topic, checked.patient_id, checked.model_dump_json().encode())
            when_done(partial(count_unmapped, result))
            if rejected:
                # one dead letter per message or Bundle entry, carrying only that entry (issue 16)
                original = m.value if item.index is None else item.original_bytes()
                await publisher.dead_letter(None, one_per_input(rejected).at(replace(source, original=original)))
        for end in ends:
            await publisher.send(events_raw_topic, end.patient_id, end.model_dump_json().encode())


@app.agent(ingest_fhir_topic)
async def ingest_fhir(stream: faust.StreamT) -> None:
    async for batch in batches(stream, 200):
        fhir = partial(interop_batch, decode=fhir_entries, place=placed_apart if UNITS.monitored else as_is)
        await run_batch(batch, fhir, deadletter_topic, "interop.fhir")


@app.agent(ingest_hl7v2_topic)
async def ingest_hl7v2(stream: faust.StreamT) -> None:
    async for batch in batches(stream, 200):
        await run_batch(batch, partial(interop_batch, decode=hl7v2_message), deadletter_topic, "interop.hl7v2")
