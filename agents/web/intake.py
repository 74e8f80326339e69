"""FHIR R4 intake over HTTP, bounded (issue 16): ``POST /fhir`` and ``POST /fhir/Observation``.

- The body is read in chunks into a spooled temporary file (memory up to ``SPOOL_IN_MEMORY_BYTES``,
  then disk) and refused with 413 past ``settings.web.fhir_max_body_bytes``, with 408 when it is not
  all read within ``BODY_READ_DEADLINE_S`` (one of ``INTAKE_HELD`` places is held while it is read).
- A Bundle is decoded one entry at a time (``schemas.codecs.fhir_stream``) and refused with 413
  past ``settings.web.fhir_max_entries`` entries, before anything is published.
- Each rejected entry is dead-lettered once, with only that entry's bytes (never the whole body);
  a body refused whole (one resource, JSON nested too deep, a Bundle whose envelope is refused)
  with the body, truncated to the dead letter's budget with its true size and SHA-256. The dead
  letters are counted (``vigil_dead_letters_total{reason}``, once under each of a letter's reasons)
  once the broker has them.
- Idempotent on retry: event ids derive from the resource (type/id/version, fullUrl, or a digest
  of its content), so a client that retries after a 503 republishes the same ids, and the ingest
  agent counts the copies as ``duplicate`` dead letters instead of scoring them twice.

Memory bound per request: the spool (1 MiB) + one entry being decoded + the outcome records
(an event ~0.4 KB, a dead letter ~0.5 KB + 4/3 of its entry, at most
``schemas.deadletter.MAX_DEAD_LETTER_BYTES``), i.e. about 1 MiB + entries x 1 KB for ordinary
entries, or the body once where it is decoded or refused whole (at most ``fhir_max_body_bytes``);
``INTAKE_CONCURRENCY`` requests decode at a time (docs/security.md has the measurement).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from redis.exceptions import RedisError

from vigil.agents.web import metrics
from vigil.infra import metrics as shared_metrics
from vigil.infra.logging import get_logger
from vigil.infra.settings import Settings
from vigil.infra.unmapped import count_unmapped
from vigil.models.stays import is_discharge
from vigil.schemas import topics
from vigil.schemas.codecs.care_units import NO_UNITS, Units
from vigil.schemas.codecs.fhir_out import operation_outcome
from vigil.schemas.codecs.fhir_places import EncounterKey, Place
from vigil.schemas.codecs.fhir_stream import decode_fhir_entries, scan_fhir
from vigil.schemas.codecs.loinc import DecodeResult
from vigil.schemas.codecs.placing import Placing
from vigil.schemas.deadletter import DeadLetter, Rejected, Source, one_per_input, parts_said

FHIR_JSON = "application/fhir+json"
SPOOL_IN_MEMORY_BYTES = 1 << 20
INTAKE_CONCURRENCY = 2  # bodies decoded at a time (the rest wait): bounds memory and CPU
# requests read or waiting to decode at a time; past it 503 at once, before the body is read: each
# holds its body (1 MiB in memory, the rest in the temp dir, RAM under compose's tmpfs), and 16 at
# once held 112 MiB while 2 decoded, more connections more without end
INTAKE_HELD = 8
# the whole body read within this (8 MiB, the default body limit, needs 2.2 Mbit/s): uvicorn has no
# deadline on a body, and 8 senders that sent their headers and then nothing held every place above,
# every other integration answered 503 for as long as their connections stayed open
BODY_READ_DEADLINE_S = 30.0
MAX_LISTED_ISSUES = 100  # OperationOutcome issues listed; the count of the rest is given
DEADLETTER_KEY = b"http-fhir"

log = get_logger("vigil.web")
Record = tuple[str, bytes, bytes]


class BodyTooLarge(Exception):
    pass


class BodyTooSlow(Exception):
    """The body was not all read within the deadline."""


class PlaceBook(Protocol):
    """Where FHIR Encounters' units are kept between requests (the workers' Redis store): results sent
    apart from their Encounter are placed by them (``DecodeResult.placed``)."""

    def kept_places(self, encounter_ids: Sequence[EncounterKey]) -> dict[EncounterKey, tuple[Place, ...]]: ...

    def keep_places(self, encounters: dict[EncounterKey, tuple[Place, ...]]) -> None: ...


@dataclass
class IntakeResult:
    """What one request decoded to: the records to publish and the counts for the answer."""

    records: list[Record] = field(default_factory=list)
    events: int = 0
    rejected: list[Rejected] = field(default_factory=list)  # every rejection (for the answer)
    # each dead letter's reasons (``Rejected.reasons``), one entry per letter among ``records``
    letter_reasons: list[tuple[str, ...]] = field(default_factory=list)
    unmapped: DecodeResult = field(default_factory=DecodeResult)  # what was ignored or unknown, no events
    too_many_entries: int | None = None  # the limit, when the Bundle is over it

    @property
    def dead_letters(self) -> int:
        return len(self.letter_reasons)


def outcome(status_code: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status_code=status_code, media_type=FHIR_JSON)


def problem(status_code: int, code: str, text: str) -> Response:
    return outcome(
        status_code,
        {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]},
    )


async def spool_body(request: Request, limit: int, deadline_s: float = BODY_READ_DEADLINE_S) -> IO[bytes]:
    """The request body in a spooled temporary file; ``BodyTooLarge`` past ``limit`` bytes,
    ``BodyTooSlow`` when it is not all read within ``deadline_s`` seconds."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115 - returned
    size = 0
    try:
        async with asyncio.timeout(deadline_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge
                spool.write(chunk)
    except TimeoutError:
        spool.close()
        raise BodyTooSlow from None
    except BaseException:  # too large, or the client gone: nothing keeps the spool
        spool.close()
        raise
    spool.seek(0)
    return spool


def decode_intake(
    body: IO[bytes], path: str, max_entries: int, now: datetime, units: Units = NO_UNITS, book: PlaceBook | None = None
) -> IntakeResult:
    """Pure but for reading ``body`` and ``book``: the records one request publishes (events, then
    one dead letter per rejected entry carrying only that entry); ``units``: the site's, for the
    results it scores and the Encounter moves that end a stay, as the FHIR agent reads them;
    ``book``: the Encounters' units kept between requests (where the site names its units)."""
    result = IntakeResult()
    placing = Placing()  # this request's Encounters: kept, and asked of the store once each
    scan = scan_fhir(body, max_entries)  # type: ignore[arg-type]
    # over the limit whatever it says it is: a Bundle's resourceType may follow its 1,001st entry,
    # where the count stops, and such a Bundle was decoded whole past the limit
    if scan.over_limit:
        result.too_many_entries = max_entries
        return result
    source = Source(topic=f"http:{path}")
    ends: list[tuple[str, bytes, bytes]] = []  # a Bundle's discharges go after its other entries
    for item in decode_fhir_entries(body, scan, units):  # type: ignore[arg-type]
        # hand the GIL to the event loop between entries: a long Bundle must not hold /healthz and
        # every other request behind its decoding (the interpreter's own switch is every 5 ms)
        time.sleep(0)
        decoded = item.result.checked(now)  # the intake rules (unit, range, clock skew), as the FHIR agent
        if book is not None and units.monitored:
            decoded = _placed(decoded, book, placing, units)
        for event in decoded.events:
            out = (topics.EVENTS_RAW, event.patient_id.encode(), event.model_dump_json().encode())
            (ends if is_discharge(event) else result.records).append(out)
        result.events += len(decoded.events)
        result.unmapped.ignored.extend(decoded.ignored)
        result.unmapped.unknown_codes.update(decoded.unknown_codes)
        result.unmapped.ignored_units.update(decoded.ignored_units)
        result.unmapped.unplaced += decoded.unplaced
        if decoded.rejected:
            result.rejected.extend(decoded.rejected)
            # one dead letter per entry, with that entry only; ``offset`` is the entry's index
            original = item.original_bytes()
            one = one_per_input(decoded.rejected).at(replace(source, offset=item.index, original=original))
            record = DeadLetter.of(one, now).model_dump_json().encode()
            result.records.append((topics.DEADLETTER, DEADLETTER_KEY, record))
            result.letter_reasons.append(one.reasons)
    result.records += ends
    return result


def _placed(decoded: DecodeResult, book: PlaceBook, placing: Placing, units: Units) -> DecodeResult:
    """As the FHIR agent does: keep the units of the Encounters this entry carries, then place its
    results sent apart from theirs."""
    book.keep_places(placing.carried(decoded))
    if ask := placing.to_ask(decoded):
        placing.found(book.kept_places(ask))
    return placing.place(decoded, units)


def _decode_gate(request: Request) -> asyncio.Semaphore:
    """One gate per app (its event loop): at most ``INTAKE_CONCURRENCY`` bodies decode at a time."""
    state = request.app.state
    if getattr(state, "fhir_decode_gate", None) is None:
        state.fhir_decode_gate = asyncio.Semaphore(INTAKE_CONCURRENCY)
    gate: asyncio.Semaphore = state.fhir_decode_gate
    return gate


async def fhir_intake(
    request: Request, settings: Settings, produce_many: Any, path: str, book: PlaceBook | None = None
) -> Response:
    """The route body after the bearer check: read, decode, publish, answer."""
    state = request.app.state
    held = getattr(state, "fhir_held", 0)
    if held >= INTAKE_HELD:
        metrics.FHIR_REQUESTS.labels("busy").inc()
        busy = problem(503, "transient", f"{held} requests are being read or decoded; retry the same request shortly")
        busy.headers["Retry-After"] = "1"
        return busy
    state.fhir_held = held + 1
    try:
        return await _read_and_publish(request, settings, produce_many, path, book)
    finally:
        state.fhir_held -= 1


async def _read_and_publish(
    request: Request, settings: Settings, produce_many: Any, path: str, book: PlaceBook | None
) -> Response:
    web = settings.web
    try:
        body = await spool_body(request, web.fhir_max_body_bytes, BODY_READ_DEADLINE_S)
    except BodyTooLarge:
        metrics.FHIR_REQUESTS.labels("too_large").inc()
        return problem(413, "too-costly", f"payload over {web.fhir_max_body_bytes} bytes")
    except BodyTooSlow:
        metrics.FHIR_REQUESTS.labels("too_slow").inc()
        late = problem(
            408,
            "timeout",
            f"the body was not all sent within {BODY_READ_DEADLINE_S:g} s; send the same request again,"
            " in smaller Bundles if the link is slow",
        )
        late.headers["Connection"] = "close"  # the rest of its body may still come: not a next request
        return late
    try:
        async with _decode_gate(request):
            now, units = datetime.now(UTC), settings.ingest.units()
            result = await run_in_threadpool(decode_intake, body, path, web.fhir_max_entries, now, units, book)
    except RedisError as exc:  # the Encounters' units are unreadable: nothing published yet
        metrics.FHIR_REQUESTS.labels("unavailable").inc()
        log.error("fhir_places_failed", error=type(exc).__name__)
        return problem(503, "transient", "the encounters store (Redis) is unavailable; retry the same request later")
    finally:
        body.close()
    count_unmapped(result.unmapped)  # as the FHIR agent counts them: ignored parts, unknown codes, units
    if result.too_many_entries is not None:
        metrics.FHIR_REQUESTS.labels("too_large").inc()
        limit = result.too_many_entries
        return problem(413, "too-costly", f"Bundle has more than {limit} entries (limit {limit} per request)")
    try:
        if result.records:
            # all-or-nothing is not possible across Kafka partitions; a retry is idempotent instead
            await run_in_threadpool(produce_many, result.records)
    except Exception as exc:
        metrics.FHIR_REQUESTS.labels("unavailable").inc()
        log.error("fhir_publish_failed", error=type(exc).__name__, records=len(result.records))
        return problem(503, "transient", "the event stream is unavailable; retry the same request later")
    metrics.FHIR_EVENTS.inc(result.events)
    shared_metrics.count_dead_letters(result.letter_reasons)  # as the workers and the MLLP listener, once stored
    return _answer(result, path)


def _answer(result: IntakeResult, path: str) -> Response:
    summary = operation_outcome(result.rejected[:MAX_LISTED_ISSUES])
    unmapped = result.unmapped
    note = f"accepted {result.events} events, rejected {len(result.rejected)}, ignored {len(unmapped.ignored)}"
    if len(result.rejected) > MAX_LISTED_ISSUES:
        note += f" ({len(result.rejected) - MAX_LISTED_ISSUES} rejections not listed)"
    if unmapped.unknown_codes:
        note += "; unknown codes: " + ", ".join(f"{c} x{n}" for c, n in unmapped.unknown_codes.most_common(20))
    if unmapped.ignored_units:
        note += "; not scored, from units Vigil does not monitor: " + ", ".join(
            f"{u} x{n}" for u, n in unmapped.ignored_units.most_common(20)
        )
    if unmapped.unplaced:
        note += (
            "; scored as if from a monitored unit, their Encounter not read by Vigil: "
            f"{unmapped.unplaced} results (send the Encounters in progress first)"
        )
    if result.rejected:
        summary["issue"].append({"severity": "information", "code": "informational", "diagnostics": note})
    else:
        summary["issue"][0]["diagnostics"] = note
    if not result.events and not result.rejected:
        # every part deliberately not mapped (context, a ward's results): nothing wrong, nothing to
        # send again, as the MLLP listener's AA "nothing to map"
        summary["issue"][0]["diagnostics"] = "nothing to map: " + parts_said(unmapped.ignored, "ignored") + f" ({note})"
        metrics.FHIR_REQUESTS.labels("accepted").inc()
        log.info("fhir_ignored", path=path, ignored=len(unmapped.ignored))
        return outcome(200, summary)
    if not result.events:
        metrics.FHIR_REQUESTS.labels("rejected").inc()
        log.info("fhir_rejected", path=path, rejected=len(result.rejected), ignored=len(unmapped.ignored))
        return outcome(400, summary)
    metrics.FHIR_REQUESTS.labels("accepted").inc()
    log.info("fhir_accepted", path=path, events=result.events, rejected=len(result.rejected))
    return outcome(201 if not result.rejected else 200, summary)
