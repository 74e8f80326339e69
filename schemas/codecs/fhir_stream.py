"""FHIR R4 intake that streams a Bundle's entries (ijson) instead of building the whole tree.

``decode_fhir_stream(payload, max_entries)`` reads a seekable payload twice: a first pass counts
the entries (stopping past ``max_entries``), checks the Bundle's envelope and keeps only the
context resources that references resolve to (Patient, Medication, ...: ``CONTEXT_RESOURCES``);
a second pass decodes one entry at a time with the same rules as ``decode_fhir``
(``fhir.decode_bundle_entry``). Each ``EntryOutcome`` carries only its own entry's bytes, so a
rejected entry is dead-lettered with that entry, not the whole request: a 660 kB Bundle of 10,000
rejected Observations once held 10,000 copies of itself (5.6 GB, issue 16).

Memory: one entry at a time plus the context resources and the caller's outcomes; the payload
itself stays wherever the caller keeps it (a spooled temporary file in the web intake). A payload
that is not a Bundle (one resource) is decoded whole by ``decode_fhir``. A Bundle the stream's parser
cannot read but that is valid JSON (an integer past 64 bits) is parsed whole, once, and its entries
decoded one at a time as the stream's are: decoded by ``decode_fhir``, one such integer made the
dead letter of one bad entry carry every other patient's entries. The second pass decodes a Bundle's
Patient entries after its other entries, their outcomes last: a Patient's age and sex are read beside
its measurements only (``fhir.Measurements``), whichever entry comes first.

Past ``max_entries`` entries a payload is refused whatever its ``resourceType``: the count stops
there, so a Bundle that names its type after its ``entry`` array was not known to be one, and was
decoded whole past the limit.
"""

from __future__ import annotations

import json
import os
from codecs import BOM_UTF8
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import ijson
import pydantic_core

from vigil.schemas.codecs.care_units import NO_UNITS, Units
from vigil.schemas.codecs.fhir import (
    CONTEXT_RESOURCES,
    MAX_BUNDLE_ENTRIES,
    Measurements,
    bundle_entry_problem,
    bundle_shell_problem,
    decode_bundle_entry,
    decode_fhir,
    is_patient_entry,
    payload_size_problem,
)
from vigil.schemas.codecs.fhir_history import EntryVersion, entry_version, history_ignores
from vigil.schemas.codecs.fhir_message import cancel_event
from vigil.schemas.codecs.fhir_places import BundleIndex
from vigil.schemas.codecs.loinc import DecodeResult
from vigil.schemas.deadletter import Rejected

# pydantic_core's own limit (``from_json`` refuses deeper), so that a resource sent alone and one in
# a Bundle are refused alike; FHIR R4 resources nest a few tens of levels at most
MAX_JSON_DEPTH = 200


@dataclass(frozen=True)
class EntryOutcome:
    """What one Bundle entry (``index``) or a whole non-Bundle payload (``index`` None) decoded to;
    ``original`` holds its bytes when something in it was rejected (else empty). ``parsed`` keeps
    the entry (or the payload) so that a part refused later, by the intake rules applied after
    decoding (``DecodeResult.checked``), still gets its bytes: ``original_bytes()``."""

    index: int | None
    result: DecodeResult
    original: bytes = b""
    parsed: Any = None

    def original_bytes(self) -> bytes:
        if self.original or self.parsed is None:
            return self.original
        return self.parsed if isinstance(self.parsed, bytes) else _entry_bytes(self.parsed)


@dataclass
class BundleScan:
    """The first pass: is it a Bundle, how many entries, and what references resolve to."""

    is_bundle: bool = False
    entries: int = 0
    over_limit: bool = False
    problem: Rejected | None = None
    by_full_url: BundleIndex = field(default_factory=BundleIndex)
    # a history Bundle's entries not read (older versions, deletions: ``fhir_history``), by index
    unread: dict[int, Rejected] = field(default_factory=dict)
    # the entries, where the stream could not read them and the payload was parsed whole instead
    parsed_entries: list[Any] | None = None


class TooDeep(ValueError):
    """The JSON nests containers deeper than ``MAX_JSON_DEPTH``."""


def _entries(payload: BinaryIO, top: ijson.ObjectBuilder | None = None) -> Iterator[Any]:
    """Each item of the top-level object's ``entry`` array as a Python value, in order; every other
    event goes to ``top`` (the payload with ``entry`` left empty). Raises ijson's errors on invalid
    JSON and ``TooDeep`` past ``MAX_JSON_DEPTH`` levels, before building anything that deep.

    ijson's ``basic_parse`` with the route kept here, not ``ijson.parse``: ``parse`` keeps a prefix
    string per open level, each as long as its path, so memory grows with the square of the depth
    (80 kB of ``[`` took over 3 GB)."""
    builder: ijson.ObjectBuilder | None = None
    kinds: list[str] = []  # the open containers, outermost first: "map" or "array"
    key: Any = None  # the top-level object's current key
    for event, value in ijson.basic_parse(payload, use_float=True):
        opens, closes = event in ("start_map", "start_array"), event in ("end_map", "end_array")
        if closes:
            kinds.pop()
        depth = len(kinds)  # the level this event sits at (a container's start and end: outside it)
        in_entries = depth >= 2 and kinds[0] == "map" and kinds[1] == "array" and key == "entry"
        if opens:
            if depth >= MAX_JSON_DEPTH:
                raise TooDeep(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
            kinds.append("map" if event == "start_map" else "array")
        elif event == "map_key" and depth == 1:
            key = value
        if not in_entries:
            if top is not None:
                top.event(event, value)
            continue
        if depth == 2 and builder is None and not opens:
            yield value  # a scalar entry: complete at once
            continue
        if builder is None:
            builder = ijson.ObjectBuilder()
        builder.event(event, value)
        if depth == 2 and closes:
            yield builder.value
            builder = None


@dataclass
class _EntriesSeen:
    """What the first pass keeps of the entries, one at a time, before the envelope is known (its
    ``resourceType`` and ``type`` may follow them)."""

    count: int = 0
    over_limit: bool = False
    first: Any = None  # the first entry's resource: a message's MessageHeader
    versions: list[EntryVersion | None] = field(default_factory=list)  # in case it is a history
    context: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)  # indexed once unread is known


def _see_entries(entries: Iterable[Any], max_entries: int) -> _EntriesSeen:
    """Count the entries (stopping past ``max_entries``) and keep what resolves references."""
    seen = _EntriesSeen()
    for entry in entries:
        seen.count += 1
        if seen.count == 1 and isinstance(entry, dict):
            seen.first = entry.get("resource")
        if seen.count > max_entries:
            seen.over_limit = True
            break
        seen.versions.append(entry_version(entry))
        resource = entry.get("resource") if isinstance(entry, dict) else None
        full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if (
            isinstance(resource, dict)
            and isinstance(kind, str)
            and kind in CONTEXT_RESOURCES
            and isinstance(full_url, str)
        ):
            seen.context.append((seen.count - 1, full_url, resource))
    return seen


def _bundle_scan(seen: _EntriesSeen, shell: Any) -> BundleScan:
    """The scan of the entries ``seen`` and of the envelope ``shell`` (the payload without its
    entries), alike whether the entries were streamed or parsed whole."""
    scan = BundleScan(entries=seen.count, over_limit=seen.over_limit)
    scan.is_bundle = isinstance(shell, dict) and shell.get("resourceType") == "Bundle"
    if scan.is_bundle and isinstance(shell, dict) and shell.get("type") == "history":
        scan.unread = history_ignores(seen.versions)  # the type may follow the entries: known only now
    for index, full_url, resource in seen.context:
        if index not in scan.unread:  # an older version shares its fullUrl with the newest
            scan.by_full_url[full_url] = resource
    if scan.is_bundle and not scan.over_limit:
        assert isinstance(shell, dict)
        if not isinstance(shell.get("entry", []), list):
            scan.problem = Rejected("schema", "Bundle.entry is not a list")
        else:
            scan.problem = bundle_shell_problem(shell)
        scan.by_full_url.message = cancel_event(shell, seen.first, scan.by_full_url)
    return scan


def scan_fhir(payload: BinaryIO, max_entries: int = MAX_BUNDLE_ENTRIES) -> BundleScan:
    """The first pass over ``payload`` (from its start). A payload over ``fhir.MAX_PAYLOAD_BYTES`` is
    refused whole, ``too_large``, as ``decode_fhir`` refuses it: the stream once decoded a 9 MB
    Bundle that ``vigil convert`` refused, so the worker scored what the integrator was told it would not."""
    too_large = payload_size_problem(_size(payload))
    if too_large is not None:
        return BundleScan(problem=too_large)
    top = ijson.ObjectBuilder()
    try:
        seen = _see_entries(_entries(_json_start(payload), top), max_entries)
    except TooDeep as exc:
        return BundleScan(problem=Rejected("invalid_json", str(exc)))  # as pydantic_core says of a resource
    except (ijson.JSONError, ValueError, UnicodeDecodeError):
        return _scan_whole(payload, max_entries)
    return _bundle_scan(seen, getattr(top, "value", None))


def _scan_whole(payload: BinaryIO, max_entries: int) -> BundleScan:
    """What the stream could not read, read whole: not JSON (NaN and Infinity included, which the
    whole-payload decoder would read) is refused here, and a payload over ``max_entries`` too. One
    NaN in a Bundle of 9,000 entries (limit 1,000) had every entry decoded whole and published.
    Valid JSON the stream's parser refuses (an integer past 64 bits) is scanned as the stream
    scans, and a Bundle's entries kept to be decoded one at a time (``parsed_entries``)."""
    try:
        data = pydantic_core.from_json(_json_start(payload).read(), allow_inf_nan=False)
    except ValueError as exc:
        return BundleScan(problem=Rejected("invalid_json", str(exc).splitlines()[0][:200]))
    entries = data.get("entry") if isinstance(data, dict) else None
    if not isinstance(entries, list):  # one resource, or an envelope refused for its entry
        return _bundle_scan(_EntriesSeen(), data)
    scan = _bundle_scan(_see_entries(entries, max_entries), {**data, "entry": []})
    if scan.is_bundle:
        scan.parsed_entries = entries
    return scan


def decode_fhir_entries(payload: BinaryIO, scan: BundleScan, units: Units = NO_UNITS) -> Iterator[EntryOutcome]:
    """The second pass (``payload`` from its start): one outcome per entry, or one for the whole
    (``units``: the site's, for the Encounter moves that end a stay)."""
    payload.seek(0)
    # A payload refused whole carries the whole of it (bounded by the caller's limits: a Kafka
    # record, the intake's body limit): its dead letter keeps what fits with the true size and
    # SHA-256 (``DeadLetter.of``). A prefix once passed as the original, untruncated, its digest the
    # prefix's: no match for the producer's copy, and a replay sent a cut Bundle.
    if scan.over_limit:  # first, whatever the payload says it is: its type may follow its entries
        too_many = Rejected("too_large", f"Bundle has more than {scan.entries - 1} entries (limit {scan.entries - 1})")
        yield EntryOutcome(None, DecodeResult(rejected=[too_many]), payload.read())
        return
    if scan.problem is not None and not scan.is_bundle:  # too deep to read as a stream
        yield EntryOutcome(None, DecodeResult(rejected=[scan.problem]), payload.read())
        return
    if not scan.is_bundle:
        body = payload.read()
        result = decode_fhir(body, units)
        yield EntryOutcome(None, result, body if result.rejected else b"", body)
        return
    if scan.problem is not None:
        yield EntryOutcome(None, DecodeResult(rejected=[scan.problem]), payload.read())
        return
    if scan.entries == 0:
        yield EntryOutcome(None, DecodeResult(ignored=[Rejected("empty_bundle", "Bundle has no entries")]))
        return
    entries = scan.parsed_entries if scan.parsed_entries is not None else _entries(_json_start(payload))
    measurements = Measurements()
    # decoded last, beside the Bundle's measurements: held parsed, within the payload's 8 MiB limit
    # (``payload_size_problem``), as the whole decoder holds every entry
    patients: list[tuple[int, Any]] = []
    for index, entry in enumerate(entries):
        if index in scan.unread:  # not the newest version of its resource: ignored, as decode_fhir does
            yield EntryOutcome(index, DecodeResult(ignored=[scan.unread[index]]))
        elif is_patient_entry(entry):
            patients.append((index, entry))
        else:
            yield _entry_outcome(entry, index, scan, units, measurements)
    for index, entry in patients:
        yield _entry_outcome(entry, index, scan, units, measurements)


def _entry_outcome(entry: Any, index: int, scan: BundleScan, units: Units, measurements: Measurements) -> EntryOutcome:
    problem = bundle_entry_problem(entry, index)
    result = (
        DecodeResult(rejected=[problem])
        if problem
        else decode_bundle_entry(entry, index, scan.by_full_url, units, measurements)
    )
    original = _entry_bytes(entry) if result.rejected else b""
    return EntryOutcome(index, result, original, entry)


def decode_fhir_stream(
    payload: BinaryIO, max_entries: int = MAX_BUNDLE_ENTRIES, units: Units = NO_UNITS
) -> Iterator[EntryOutcome]:
    yield from decode_fhir_entries(payload, scan_fhir(payload, max_entries), units)


def _size(payload: BinaryIO) -> int:
    """The payload's length in bytes, as sent, without reading it."""
    size = payload.seek(0, os.SEEK_END)
    payload.seek(0)
    return size


def _json_start(payload: BinaryIO) -> BinaryIO:
    """``payload`` from its first byte of JSON: a leading UTF-8 byte-order mark (Windows editors and
    exports write one) skipped, as RFC 8259 section 8.1 lets a parser do and ``decode_fhir`` does.
    Neither ijson nor pydantic_core skips it: the whole payload was ``invalid_json``. What is refused
    whole keeps it (read from ``seek(0)``): the dead letter is the payload as sent."""
    payload.seek(0)
    if payload.read(len(BOM_UTF8)) != BOM_UTF8:
        payload.seek(0)
    return payload


def _entry_bytes(entry: Any) -> bytes:
    # the entry as JSON (re-serialized from the parsed value: the Bundle's own bytes are not kept)
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode("utf-8", errors="surrogatepass")
