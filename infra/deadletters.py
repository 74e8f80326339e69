"""The dead letters read back, and sent again once their cause is fixed (``vigil deadletters``).

Bad input goes to ``vigil.deadletter`` with the reason and its original bytes (``schemas.deadletter``).
Most of it stays bad: a producer that sent the wrong unit must send again. Some of it was good and
refused for a cause that an operator can fix: a worker too old for a patient's state (reason
``internal``, docs/operations.md, "Upgrading workers"), a code map that lacked a code
(``unknown_code``, ``unmapped_code``), a clock that was off (``clock_skew``). Those originals are
sent again to the topic they came in on, and score as if they had just arrived.

What may be sent again (``resend_of``; pure):

- only inputs from outside: ``vigil.events.raw``, ``vigil.ingest.fhir``, ``vigil.ingest.hl7v2``,
  ``vigil.treatment.requests``, the FHIR intake's (``http:/fhir``) to ``vigil.ingest.fhir`` and the
  MLLP listener's (``mllp``) to ``vigil.ingest.hl7v2``. A
  letter of a topic Vigil writes (a score, an alert acknowledgement) is not: acted on late, it would
  change a patient's alert as it stands now, not as it stood;
- whole originals only: a ``truncated`` copy holds the first bytes of a too-large input; ask its
  producer for the original by its SHA-256; likewise an original whose key was too long to keep
  (``key_replaced``: the letter's key is the key's SHA-256, and an input sent under it would land
  on another partition than its patient's);
- never a ``duplicate`` (its event was scored already), nor a ``stay_ended`` (its patient's stay ended
  before it arrived: sent again, it is refused again);
- a FHIR Bundle entry (what the intake dead-letters of a Bundle) goes as a Bundle of that one entry;
- never twice: every replay publishes the letters it sent to ``vigil.audit`` (``replay_record``), and
  a later replay skips them (``replayed_before``) unless told to send them again. A record names
  letters by partition and offset, and the offsets of a dead-letter topic deleted and created again
  start at 0 once more: a letter counts as sent only where a replay named its place and ran after the
  letter was written (``Replayed.sent``), so the new letters at the old places are not skipped.

Letters are read from the start of the topic to its end as the command starts (``read_letters``),
one at a time: memory does not grow with the topic. A letter whose own record does not parse (another
version's, or a copy that is not base64) is counted as ``unreadable``, not sent.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from vigil.infra.audit import actor
from vigil.infra.connect import kafka_consumer
from vigil.infra.settings import Settings
from vigil.schemas import topics
from vigil.schemas.deadletter import DeadLetter

# where a letter's original goes again, by the topic it came in on
RESEND_TO = {
    topics.EVENTS_RAW: topics.EVENTS_RAW,
    topics.INGEST_FHIR: topics.INGEST_FHIR,
    topics.INGEST_HL7V2: topics.INGEST_HL7V2,
    topics.TREATMENT_REQUESTS: topics.TREATMENT_REQUESTS,
}
HTTP_PREFIX = "http:"  # the FHIR intake's letters: source_topic "http:/fhir", "http:/fhir/Observation"
MLLP_SOURCE = "mllp"  # the HL7v2 listener's letters (``agents.mllp``): to the HL7v2 agent's topic
AUDIT_KEY = b"deadletters"
AUDIT_TYPE = "deadletter_replay"
MAX_RANGES_PER_RECORD = 20_000  # an audit record stays far below the producer's 1 MB

# why a letter is not sent again (the keys of a replay's ``skipped`` counts)
UNREADABLE = "unreadable"  # the letter's own record does not parse
TRUNCATED = "truncated"
KEY_REPLACED = "key_replaced"  # the original's key was too long to keep (``schemas.deadletter.dead_letter_key``)
NO_ORIGINAL = "no_original"
NOT_AN_INPUT = "not_an_input"
DUPLICATE = "duplicate"
STAY_ENDED = "stay_ended"
# reasons whose letters never go again (the skip code is the reason), and why, as the CLI says it
NEVER_RESENT = {
    DUPLICATE: "duplicates are not sent again: their events were scored already (drop --reason duplicate)",
    STAY_ENDED: "stay_ended letters are not sent again: their patient's stay had ended, and would again "
    "(drop that reason)",
}
REPLAYED_BEFORE = "replayed_before"


@dataclass(frozen=True)
class Letter:
    """One record of the dead-letter topic, where it sits, and its content (None: unreadable)."""

    partition: int
    offset: int
    key: bytes | None
    letter: DeadLetter | None

    @property
    def coordinates(self) -> tuple[int, int]:
        return self.partition, self.offset


@dataclass(frozen=True)
class Resend:
    """A letter's original, as it goes again: topic, key, bytes."""

    topic: str
    key: bytes | None
    value: bytes


def parse_letter(partition: int, offset: int, key: bytes | None, value: bytes | None) -> Letter:
    """A record of the dead-letter topic as a ``Letter``; one that does not validate (its
    ``original_b64`` included: ``DeadLetter``) is unreadable, counted by ``ls`` and ``replay``."""
    try:
        letter = DeadLetter.model_validate_json(value or b"")
    except ValidationError:
        letter = None
    return Letter(partition, offset, key, letter)


def resend_topic(source_topic: str) -> str | None:
    if source_topic.startswith(HTTP_PREFIX + "/fhir"):
        return topics.INGEST_FHIR
    if source_topic == MLLP_SOURCE:
        return topics.INGEST_HL7V2
    return RESEND_TO.get(source_topic)


def fhir_payload(original: bytes) -> bytes:
    """A FHIR letter's original as the FHIR agent reads it: a resource or a Bundle as it was, a
    Bundle entry (``{"fullUrl": ..., "resource": {...}}``) inside a Bundle of its own."""
    try:
        parsed = json.loads(original)
    except (ValueError, UnicodeDecodeError):
        return original  # refused again, with the reason
    if isinstance(parsed, dict) and "resourceType" not in parsed and isinstance(parsed.get("resource"), dict):
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": [parsed]}
        return json.dumps(bundle, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return original


def resend_of(item: Letter) -> Resend | str:
    """What goes again for ``item``, or why nothing does (one of the skip codes above)."""
    letter = item.letter
    if letter is None:
        return UNREADABLE
    if letter.reason in NEVER_RESENT:
        return letter.reason
    target = resend_topic(letter.source_topic)
    if target is None:
        return NOT_AN_INPUT
    if letter.truncated:
        return TRUNCATED
    if letter.key_sha256 is not None:
        return KEY_REPLACED
    original = letter.original()
    if not original:
        return NO_ORIGINAL
    if target == topics.INGEST_FHIR:
        original = fhir_payload(original)
    key = None if letter.source_topic.startswith(HTTP_PREFIX) or letter.source_topic == MLLP_SOURCE else item.key
    return Resend(target, key, original)


def as_ranges(offsets: Iterable[int]) -> list[list[int]]:
    """Sorted offsets as inclusive [first, last] runs: 3, 4, 5, 9 -> [[3, 5], [9, 9]]."""
    runs: list[list[int]] = []
    for o in sorted(set(offsets)):
        if runs and o == runs[-1][1] + 1:
            runs[-1][1] = o
        else:
            runs.append([o, o])
    return runs


def replay_record(
    sent: Iterable[tuple[int, int]], reasons: list[str], at: datetime | None = None
) -> list[dict[str, Any]]:
    """The audit records of one replay: who, when, which reasons, and the letters sent (by
    partition, as offset runs), split so that no record holds more than ``MAX_RANGES_PER_RECORD`` runs."""
    by_partition: dict[int, list[int]] = {}
    for partition, offset in sent:
        by_partition.setdefault(partition, []).append(offset)
    runs = [(p, r) for p in sorted(by_partition) for r in as_ranges(by_partition[p])]
    head = {"type": AUDIT_TYPE, **actor(at), "reasons": sorted(reasons)}
    records = []
    for start in range(0, max(len(runs), 1), MAX_RANGES_PER_RECORD):
        chunk = runs[start : start + MAX_RANGES_PER_RECORD]
        letters: dict[str, list[list[int]]] = {}
        for p, r in chunk:
            letters.setdefault(str(p), []).append(r)
        records.append({**head, "sent": sum(r[1] - r[0] + 1 for _, r in chunk), "letters": letters})
    return records


def merged_runs(pairs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive offset runs, sorted, the overlapping and adjacent ones joined: [3, 5], [4, 9] -> [3, 9]."""
    merged: list[tuple[int, int]] = []
    for a, b in sorted(pairs):
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def replay_time(record: Mapping[str, Any]) -> datetime | None:
    """When the replay of an audit record ran (its ``at``; UTC when written without a zone), or None
    when the record says no time that parses."""
    try:
        at = datetime.fromisoformat(str(record["at"]))
    except (KeyError, ValueError):
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class OffsetRuns:
    """The places one replay (or several, merged) named: by partition, merged offset runs; a lookup is
    a binary search."""

    def __init__(self, runs: Mapping[int, Iterable[tuple[int, int]]]) -> None:
        self._runs = {partition: merged_runs(pairs) for partition, pairs in runs.items()}
        self._starts = {p: [a for a, _ in merged] for p, merged in self._runs.items()}

    def __contains__(self, coordinates: tuple[int, int]) -> bool:
        partition, offset = coordinates
        i = bisect_right(self._starts.get(partition, []), offset) - 1
        return i >= 0 and offset <= self._runs[partition][i][1]


class Replayed:
    """The letters earlier replays sent, read from their audit records, by the time each replay ran.

    ``sent`` is the question a replay asks: a place (partition, offset) is a letter's only while the
    topic lives, and a topic deleted and created again gives its new letters the old places. A letter
    written after every replay that named its place is not one they sent. The clocks of the worker
    that wrote a letter and of the host that replayed it are taken to agree within the replay's run (NTP):
    a letter stamped later than its own replay would be sent again and come back a ``duplicate``,
    never a second score. ``in`` asks the place only (whichever letter is there now)."""

    def __init__(self, by_replay: Mapping[datetime | None, Mapping[int, Iterable[tuple[int, int]]]]) -> None:
        """``by_replay``: when each replay ran (None: a record without a time, whose places count
        whatever was written there) and the runs it named, by partition."""
        self._untimed = OffsetRuns(by_replay.get(None, {}))
        # newest first: a lookup stops at the first replay older than the letter
        self._timed = sorted(
            ((at, OffsetRuns(runs)) for at, runs in by_replay.items() if at is not None),
            key=lambda timed: timed[0],
            reverse=True,
        )

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> Replayed:
        by_replay: dict[datetime | None, dict[int, list[tuple[int, int]]]] = {}
        for record in records:
            if record.get("type") != AUDIT_TYPE:
                continue
            runs = by_replay.setdefault(replay_time(record), {})
            for partition, ranges in (record.get("letters") or {}).items():
                runs.setdefault(int(partition), []).extend((int(a), int(b)) for a, b in ranges)
        return cls(by_replay)

    def __contains__(self, coordinates: tuple[int, int]) -> bool:
        return coordinates in self._untimed or any(coordinates in runs for _, runs in self._timed)

    def sent(self, item: Letter) -> bool:
        """Whether an earlier replay sent this letter: one named its place and ran after it was written."""
        if item.coordinates in self._untimed:
            return True
        if item.letter is None:  # no time to tell by: the place decides, as for an untimed record
            return item.coordinates in self
        written = item.letter.at if item.letter.at.tzinfo is not None else item.letter.at.replace(tzinfo=UTC)
        for at, runs in self._timed:
            if at < written:
                return False
            if item.coordinates in runs:
                return True
        return False


def read_topic(settings: Settings, topic: str, timeout_s: float = 30.0) -> Iterator[tuple[int, int, Any, Any]]:
    """(partition, offset, key, value) of every record of ``topic`` from its start to its end as
    this call begins, one poll at a time. Raises ``TimeoutError`` when the broker stops answering."""
    import time

    from kafka import TopicPartition

    consumer = kafka_consumer(settings, enable_auto_commit=False, group_id=None, client_id="vigil-deadletters")
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not parts:
            return
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        left = {tp for tp in parts if ends[tp] > consumer.position(tp)}
        deadline = time.monotonic() + timeout_s
        while left:
            batches = consumer.poll(timeout_ms=500, max_records=2000)
            if batches:
                deadline = time.monotonic() + timeout_s
            elif time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: no records for {timeout_s:.0f} s before its end")
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp]:
                        yield tp.partition, record.offset, record.key, record.value
            left = {tp for tp in left if consumer.position(tp) < ends[tp]}
    finally:
        consumer.close()


def read_letters(settings: Settings) -> Iterator[Letter]:
    for partition, offset, key, value in read_topic(settings, topics.DEADLETTER):
        yield parse_letter(partition, offset, key, value)


def read_replayed(settings: Settings) -> Replayed:
    """What earlier replays sent, from ``vigil.audit``."""

    def records() -> Iterator[dict[str, Any]]:
        for _, _, key, value in read_topic(settings, topics.AUDIT):
            if key != AUDIT_KEY:
                continue
            try:
                record = json.loads(value)
            except (ValueError, TypeError):
                continue
            if isinstance(record, dict):
                yield record

    return Replayed.from_records(records())


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO 8601 time (UTC unless it says otherwise) or an age: ``90m``, ``6h``, ``2d``.
    Raises ``ValueError`` with what is accepted."""
    from datetime import timedelta

    text = text.strip()
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if text[-1:] in units and text[:-1].isdigit():
        try:
            return (now or datetime.now(UTC)) - timedelta(**{units[text[-1]]: int(text[:-1])})
        except OverflowError:  # 99999999999d: before the year 1
            raise ValueError(f"--since {text} reaches past the calendar: give an age of fewer years") from None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--since takes a time (2026-12-05T08:00) or an age (90m, 6h, 2d), not {text!r}") from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
