"""Dead letters: bad input is data, not an exception. Published on ``vigil.deadletter``.

Every dead letter fits a byte budget (``MAX_DEAD_LETTER_BYTES``), whatever the reason and however
large the input was: base64 makes a copy a third larger than the original, and a record over the
producer's ``max_request_size`` (1 MB) cannot be sent at all, which used to crash the agent and
commit the batch (issue 16). An original that does not fit is carried truncated, with its full
size and SHA-256, so it is still accounted for and can be matched against the producer's copy.
The record's key counts in the budget too, and a key over ``MAX_DEAD_LETTER_KEY_BYTES`` is replaced by
its SHA-256 (``dead_letter_key``): a 1 MB key once made even the letter without its original too
large to send, and the agent retried it forever with its partition stalled behind it.

A rejection's detail quotes the input where that helps the integrator (a FHIR resourceType or id, an
HL7v2 message type or OBX-3 code; never an unknown field's name, which may be a patient's: "(unexpected
field)", ``error_location``), so it is the sender's text: its characters
that do not print (ESC, a newline, a bidirectional override) are escaped as ``\\x1b``, ``\\n``,
``\\u202e`` (``printable``) when the rejection is made. An escape sequence in a field's name once
reached the operator's terminal through ``vigil deadletters ls``, and the MLLP ACK and the FHIR
OperationOutcome quote the detail too.

One input refused for several reasons (an ORU^R01 whose vitals are ``clock_skew`` and whose BMI is
``unmapped_code``) is one letter that carries every reason (``reasons``), the most actionable first
(``reason``, ranked by ``REASONS_MOST_ACTIONABLE_FIRST``): the first one found was kept alone before,
and the decoder's own refusals always come before the intake's checks, so a site's wrong time zone
hid behind a code Vigil does not read, unseen in ``vigil_dead_letters_total`` and out of reach of
``vigil deadletters replay --reason clock_skew``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails

# 2: original_size, original_sha256, truncated; 3: key_size, key_sha256 (a replaced key), replay_of;
# ``reasons`` added in place (still 3): a reader of version 3 ignores it, and one that skips versions
# it does not know (docs/integration.md) would have skipped every new letter for a list it need not read
DEADLETTER_SCHEMA_VERSION = 3
# The whole JSON record. Well under the producer's max_request_size (1 MB, Kafka's default
# message.max.bytes too), so a dead letter is always sendable; an ingest size limit
# (``settings.ingest.max_event_bytes``) below this keeps accepted-size originals whole.
MAX_DEAD_LETTER_BYTES = 96 * 1024
MAX_DETAIL_CHARS = 500
MAX_TOPIC_CHARS = 200
# A patient id or a message id is tens of bytes; a key past this is not one, and is replaced by its
# SHA-256 (hex) on the dead letter, the original's size and digest kept in the letter
MAX_DEAD_LETTER_KEY_BYTES = 1024
MAX_REPLAY_OF_CHARS = 200
MAX_REASON_CHARS = 64
MAX_REASONS = 32  # distinct reasons on one letter: every reason Vigil names fits
# on each record ``vigil deadletters replay`` sends again: "vigil.deadletter/<partition>/<offset>"
REPLAY_HEADER = "vigil-replay-of"


def printable(text: str) -> str:
    """``text`` with every character that does not print escaped as Python writes it (``\\x1b``,
    ``\\n``, ``\\u2028``, a lone surrogate ``\\ud800``): a detail or a source quotes the sender's
    input, and a terminal obeys an escape sequence in it (a title, a cleared screen, a line that seems
    Vigil's). What prints stays as it is, accented names of units included; the result is the same
    when escaped twice."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The key a dead letter is sent under: the original's, or its SHA-256 (hex) when it is over
    ``MAX_DEAD_LETTER_KEY_BYTES``."""
    if key is None or len(key) <= MAX_DEAD_LETTER_KEY_BYTES:
        return key
    return hashlib.sha256(key).hexdigest().encode("ascii")


@dataclass(frozen=True, slots=True)
class Source:
    """Where a rejected input came from: the topic (or ``http:<path>``), its position and the
    original bytes, so the dead letter carries everything needed to replay it."""

    topic: str
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None
    original: bytes | None = None
    replay_of: str | None = None  # the ``vigil-replay-of`` header: the letter a replay sent this from


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why one input could not be accepted. ``reason`` is a short stable code for metrics
    (``empty``, ``invalid_json``, ``schema``, ``unknown_code``, ``unit``, ``out_of_range``, ``clock_skew``,
    ``unmapped_code``, ``unsupported_resource``, ``too_large``, ``internal``; from the FHIR/HL7v2 codecs
    ``missing_subject``, ``missing_time``, ``not_final``, ``retracted``, ``adt_merge``, ``no_value``,
    ``missing_dose``, ``no_observations``, ``unsupported_message``, ``parse_error``; from the scoring
    step ``outside_window``, ``duplicate``, ``stay_ended``, ``unknown_stay``, ``no_open_stay``,
    ``other_encounter``, ``late_discharge``: docs/interop.md, "Dead-letter reasons");
    ``detail`` is for the integrator and never contains patient values. It may quote the input (a
    code, a resourceType; never an unknown key: ``error_location``), and is kept ``printable``:
    whatever quotes it (a dead letter, an MLLP ACK, a FHIR OperationOutcome, ``vigil deadletters
    ls``) shows the sender's control characters escaped."""

    reason: str
    detail: str = ""
    source: Source | None = None  # attached by the agent that read the input (``at``)
    # the input's other distinct reasons, after ``reason`` (``one_per_input``)
    other_reasons: tuple[str, ...] = ()

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every distinct reason of the input, ``reason`` first."""
        return (self.reason, *self.other_reasons)

    def __post_init__(self) -> None:
        if not self.detail.isprintable():  # frozen: the escaped detail replaces the sender's text once, here
            object.__setattr__(self, "detail", printable(self.detail))

    def at(self, source: Source) -> Rejected:
        return replace(self, source=source)


# what a detail says in place of a key the record does not know (``error_location``)
UNEXPECTED_FIELD = "(unexpected field)"


def error_location(error: ErrorDetails) -> tuple[int | str, ...]:
    """Where a validation error is (pydantic's ``loc``), a key the record does not know
    (``extra_forbidden``) named ``(unexpected field)``: that key is the sender's text (an MRN, a
    patient's name used as a key) and never goes into a detail. Every refused record's detail (an
    event, a treatment plan, an alert's answer) places its error through this."""
    loc = tuple(error["loc"])
    return (*loc[:-1], UNEXPECTED_FIELD) if error["type"] == "extra_forbidden" else loc


def invalid_record(exc: ValidationError, subject: str) -> Rejected:
    """The dead letter of a record that does not validate (a treatment plan, an alert's answer):
    the field's path and the rule it broke, so the integrator can mend it ("acknowledgement: at:
    times must carry a timezone"), never the value sent (a plan holds a weight and an MRN, an answer
    a clinician's name and note), nor a key it does not know (``error_location``); ``too_large``
    first, for a record with more than it may hold."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if not errors:
        return Rejected("schema", f"{subject}: not a valid record for this topic")
    first = next((e for e in errors if e["type"] == "too_large"), errors[0])
    loc = error_location(first)
    # no field: a rule of the whole record (a snooze's length and reason)
    where = ".".join(str(part) for part in loc) + ": " if loc else ""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    reason = "too_large" if first["type"] == "too_large" else "schema"
    return Rejected(reason, f"{subject}: {where}{first['msg']}{more}"[:300])


def parts_said(parts: Sequence[Rejected], what: str) -> str:
    """What an answer says of the parts it refused or ignored, by reason: '3 parts refused:
    clock_skew x2, unmapped_code', '1 part ignored: unmonitored_unit' (the MLLP ACK, the FHIR
    OperationOutcome)."""
    counts = Counter(r.reason for r in parts).most_common()
    reasons = ", ".join(f"{r} x{n}" if n > 1 else r for r, n in counts)
    return f"{len(parts)} part{'s' if len(parts) > 1 else ''} {what}: {reasons}"


# The reason a letter of several is shown, counted first and alerted by: the most actionable first.
# First the refusals of a value Vigil would have read, which a fix then a replay recovers: Vigil's
# own failure (``internal``: replace the workers); a setting or a clock that refuses a whole feed
# (``clock_skew``); a sender's code, unit or value; what a result lacks to be placed. Then a whole
# input refused (never beside another reason, ranked for completeness). Then what needs a person,
# not a replay: a withdrawn result (``retracted``), a merge, and the scoring step's rules (one event
# each: never beside another reason), the expected ones last. Last, a part Vigil would not have
# read anyway: a code not in the table, no value, a status not yet final, a resource or message
# Vigil does not map. A reason not named here comes after all of them; ties keep the first found.
REASONS_MOST_ACTIONABLE_FIRST = (
    "internal",
    "clock_skew",
    "unknown_code",
    "unit",
    "out_of_range",
    "missing_time",
    "missing_subject",
    "missing_dose",
    "schema",
    "invalid_json",
    "parse_error",
    "too_large",
    "empty",
    "retracted",
    "adt_merge",
    "late_discharge",
    "other_encounter",
    "outside_window",
    "unknown_stay",
    "stay_ended",
    "no_open_stay",
    "duplicate",
    "unmapped_code",
    "no_value",
    "not_final",
    "unsupported_resource",
    "unsupported_message",
    "no_observations",
)
_RANK = {reason: rank for rank, reason in enumerate(REASONS_MOST_ACTIONABLE_FIRST)}


def most_actionable_first(reasons: Sequence[str]) -> list[str]:
    """Each of ``reasons`` once, ranked by ``REASONS_MOST_ACTIONABLE_FIRST`` (a stable sort: those of
    one rank, or unranked, in the order found)."""
    return sorted(dict.fromkeys(reasons), key=lambda reason: _RANK.get(reason, len(_RANK)))


def one_per_input(rejected: list[Rejected]) -> Rejected:
    """The rejections of one input (a message, a Bundle entry) as one dead letter: every distinct
    reason, the most actionable first (``most_actionable_first``), and every detail (bounded), in the
    order found. One input, one copy of its bytes: a FHIR Observation with 10,000 rejected
    components must not become 10,000 copies of itself (issue 16)."""
    if len(rejected) == 1:
        return rejected[0]
    primary, *others = most_actionable_first([reason for r in rejected for reason in r.reasons])
    details = "; ".join(f"{r.reason}: {r.detail}" for r in rejected[:20])
    more = f" (+{len(rejected) - 20} more)" if len(rejected) > 20 else ""
    detail = f"{len(rejected)} rejections: {details}"[: MAX_DETAIL_CHARS - len(more)] + more
    return Rejected(primary, detail, other_reasons=tuple(others))


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = DEADLETTER_SCHEMA_VERSION
    reason: str
    detail: str
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    at: datetime
    original_b64: str  # the original bytes, untouched (or their first part when ``truncated``)
    original_size: int | None = None  # bytes of the whole original (None in version-1 records)
    original_sha256: str | None = None  # hex digest of the whole original
    truncated: bool = False
    # the original key's size and SHA-256 when it was too long to be the letter's key (its digest is)
    key_size: int | None = None
    key_sha256: str | None = None
    # "vigil.deadletter/<partition>/<offset>": the letter whose replay this input was, refused again
    replay_of: str | None = None
    # added in place (version 3): every distinct reason of the input, ``reason`` (the most actionable,
    # ``one_per_input``) first; a letter written without it reads as [reason]
    # (a tuple: the frozen record stays hashable, as it was before the field)
    reasons: tuple[str, ...] = Field(default=(), validate_default=True)

    @field_validator("reasons")
    @classmethod
    def _reason_first(cls, reasons: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        reason = info.data.get("reason")  # absent when it did not validate: the letter fails anyway
        return tuple(dict.fromkeys([reason, *reasons])) if isinstance(reason, str) else reasons

    def refused_for(self, chosen: Collection[str]) -> bool:
        """Whether any of ``chosen`` refused a part of the input, its primary reason or another:
        ``vigil deadletters ls --reason`` and ``replay --reason`` choose letters so."""
        return any(reason in chosen for reason in self.reasons)

    @field_validator("original_b64")
    @classmethod
    def _is_base64(cls, value: str) -> str:
        # a letter whose copy does not decode is not a letter: read back, it counts as unreadable
        # (``infra.deadletters``) instead of failing ``original()`` half-way through a listing
        try:
            base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"original_b64 is not base64: {exc}") from None
        return value

    @classmethod
    def of(cls, rejected: Rejected, at: datetime, budget: int = MAX_DEAD_LETTER_BYTES) -> DeadLetter:
        """The dead letter of ``rejected``: its JSON (``model_dump_json``) and its key
        (``dead_letter_key`` of the source's) together at most ``budget`` bytes."""
        source = rejected.source or Source(topic="unknown")
        original = source.original or b""
        key = dead_letter_key(source.key)
        long_key = source.key if source.key is not None and key != source.key else None
        shell = cls(
            reason=rejected.reason[:MAX_REASON_CHARS],
            reasons=tuple(reason[:MAX_REASON_CHARS] for reason in rejected.reasons[:MAX_REASONS]),
            # a Rejected's detail is printable already; a source (``http:<path>``) may quote a request
            detail=printable(rejected.detail[:MAX_DETAIL_CHARS])[:MAX_DETAIL_CHARS],
            source_topic=printable(source.topic[:MAX_TOPIC_CHARS])[:MAX_TOPIC_CHARS],
            partition=source.partition,
            offset=source.offset,
            at=at,
            original_b64="",
            original_size=len(original),
            original_sha256=hashlib.sha256(original).hexdigest(),
            key_size=len(long_key) if long_key is not None else None,
            key_sha256=hashlib.sha256(long_key).hexdigest() if long_key is not None else None,
            replay_of=source.replay_of[:MAX_REPLAY_OF_CHARS] if source.replay_of else None,
        )
        # what is left for the copy: the record's key and the JSON count (a Kafka record is both);
        # base64 turns 3 bytes into 4 characters; the bool may grow by 1
        room = budget - len(key or b"") - len(shell.model_dump_json().encode()) - 1
        keep = max(room, 0) // 4 * 3
        if len(original) <= keep:
            return shell.model_copy(update={"original_b64": cls.encode(original)})
        return shell.model_copy(update={"original_b64": cls.encode(original[:keep]), "truncated": True})

    @staticmethod
    def encode(original: bytes) -> str:
        return base64.b64encode(original).decode("ascii")

    def original(self) -> bytes:
        """The original bytes as carried (only a prefix when ``truncated``)."""
        return base64.b64decode(self.original_b64)

    def digest(self) -> str:
        """SHA-256 of the whole original: how a producer matches its input to this dead letter."""
        return self.original_sha256 or hashlib.sha256(self.original()).hexdigest()
