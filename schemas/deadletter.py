"""Dead letters: bad input is data, not an exception. Published on ``vigil.deadletter``.

Every dead letter fits a byte budget (``MAX_DEAD_LETTER_BYTES``), whatever the reason and however
large the input was: base64 makes a copy a third larger than the original, and a record over the
producer's ``max_request_size`` (1 MB) cannot be sent at all, which used to crash the agent and
commit the batch (issue 16). An original that does not fit is carried truncated, with its full
size and SHA-256, so it is still accounted for and can be matched against the producer's copy.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import BaseModel, ConfigDict

DEADLETTER_SCHEMA_VERSION = 2
# The whole JSON record. Well under the producer's max_request_size (1 MB, Kafka's default
# message.max.bytes too), so a dead letter is always sendable; an ingest size limit
# (``settings.ingest.max_event_bytes``) below this keeps accepted-size originals whole.
MAX_DEAD_LETTER_BYTES = 96 * 1024
MAX_DETAIL_CHARS = 500
MAX_TOPIC_CHARS = 200


@dataclass(frozen=True, slots=True)
class Source:
    """Where a rejected input came from: the topic (or ``http:<path>``), its position and the
    original bytes, so the dead letter carries everything needed to replay it."""

    topic: str
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None
    original: bytes | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why one input could not be accepted. ``reason`` is a short stable code for metrics
    (``invalid_json``, ``schema``, ``unknown_code``, ``unit``, ``out_of_range``, ``clock_skew``,
    ``unmapped_code``, ``unsupported_resource``, ``too_large``, ``outside_window``, ``duplicate``,
    and from the FHIR/HL7v2 codecs ``missing_subject``, ``missing_time``, ``not_final``,
    ``no_value``, ``missing_dose``, ``no_observations``, ``unsupported_message``, ``parse_error``);
    ``detail`` is for the integrator and never contains patient values."""

    reason: str
    detail: str = ""
    source: Source | None = None  # attached by the agent that read the input (``at``)

    def at(self, source: Source) -> Rejected:
        return replace(self, source=source)


def parts_said(parts: Sequence[Rejected], what: str) -> str:
    """What an answer says of the parts it refused or ignored, by reason: '3 parts refused:
    clock_skew x2, unmapped_code', '1 part ignored: unmonitored_unit' (the MLLP ACK, the FHIR
    OperationOutcome)."""
    counts = Counter(r.reason for r in parts).most_common()
    reasons = ", ".join(f"{r} x{n}" if n > 1 else r for r, n in counts)
    return f"{len(parts)} part{'s' if len(parts) > 1 else ''} {what}: {reasons}"


def one_per_input(rejected: list[Rejected]) -> Rejected:
    """The rejections of one input (a message, a Bundle entry) as one dead letter: the first
    reason, every detail (bounded). One input, one copy of its bytes: a FHIR Observation with
    10,000 rejected components must not become 10,000 copies of itself (issue 16)."""
    first = rejected[0]
    if len(rejected) == 1:
        return first
    details = "; ".join(f"{r.reason}: {r.detail}" for r in rejected[:20])
    more = f" (+{len(rejected) - 20} more)" if len(rejected) > 20 else ""
    return Rejected(first.reason, f"{len(rejected)} rejections: {details}"[: MAX_DETAIL_CHARS - len(more)] + more)


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

    @classmethod
    def of(cls, rejected: Rejected, at: datetime, budget: int = MAX_DEAD_LETTER_BYTES) -> DeadLetter:
        """The dead letter of ``rejected``, at most ``budget`` bytes as JSON (``model_dump_json``)."""
        source = rejected.source or Source(topic="unknown")
        original = source.original or b""
        shell = cls(
            reason=rejected.reason[:64],
            detail=rejected.detail[:MAX_DETAIL_CHARS],
            source_topic=source.topic[:MAX_TOPIC_CHARS],
            partition=source.partition,
            offset=source.offset,
            at=at,
            original_b64="",
            original_size=len(original),
            original_sha256=hashlib.sha256(original).hexdigest(),
        )
        # what is left for the copy: base64 turns 3 bytes into 4 characters; the bool may grow by 1
        room = budget - len(shell.model_dump_json().encode()) - 1
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
