"""Dead letters: bad input is data, not an exception. Published on ``vigil.deadletter``."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict

DEADLETTER_SCHEMA_VERSION = 1


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

    @staticmethod
    def encode(original: bytes) -> str:
        return base64.b64encode(original).decode("ascii")

    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)
