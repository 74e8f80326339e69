"""Dead letters: bad input is data, not an exception. Published on ``vigil.deadletter``."""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import BaseModel, ConfigDict

DEADLETTER_SCHEMA_VERSION = 1


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
    ``unmapped_code``, ``unsupported_resource``, ``too_large``, ``outside_window``, and from the
    FHIR/HL7v2 codecs ``missing_subject``, ``missing_time``, ``not_final``, ``no_value``,
    ``missing_dose``, ``no_observations``, ``unsupported_message``, ``parse_error``);
    ``detail`` is for the integrator and never contains patient values."""

    reason: str
    detail: str = ""
    source: Source | None = None  # attached by the agent that read the input (``at``)

    def at(self, source: Source) -> Rejected:
        return replace(self, source=source)


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = DEADLETTER_SCHEMA_VERSION
    reason: str
    detail: str
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    at: datetime
    original_b64: str  # the original bytes, untouched, so nothing is lost

    @classmethod
    def of(cls, rejected: Rejected, at: datetime) -> DeadLetter:
        source = rejected.source or Source(topic="unknown")
        return cls(
            reason=rejected.reason,
            detail=rejected.detail,
            source_topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            at=at,
            original_b64=cls.encode(source.original or b""),
        )

    @staticmethod
    def encode(original: bytes) -> str:
        return base64.b64encode(original).decode("ascii")

    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)
