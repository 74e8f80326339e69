"""Patient events: what EHR integrations and monitors produce, and what ingest publishes.

``PatientEvent`` is the one record on ``vigil.events.raw`` (as sent) and ``vigil.events``
(validated, normalized to canonical codes and units). Versioned: ``schema_version``.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter

from vigil.schemas.codes import EventKind

EVENT_SCHEMA_VERSION = 1

# A clock more than this far in the future is a producer bug, not a measurement (clock skew).
MAX_FUTURE_SKEW = timedelta(minutes=15)


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("observed_at must carry a timezone (ISO 8601 with offset or Z)")
    return value.astimezone(UTC)


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("value must be a finite number")
    return value


def _patient_id(value: str) -> str:
    value = value.strip()
    if not value or len(value) > 64 or any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ValueError("patient_id must be 1-64 printable characters without spaces")
    return value


PatientId = Annotated[str, AfterValidator(_patient_id)]
UtcDatetime = Annotated[datetime, AfterValidator(_aware_utc)]
FiniteFloat = Annotated[float, AfterValidator(_finite)]


class PatientEvent(BaseModel):
    """One observation, assessment or treatment for one patient at one time."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=256)

    schema_version: int = EVENT_SCHEMA_VERSION
    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=64)
    patient_id: PatientId
    encounter: str | None = Field(default=None, max_length=64)
    observed_at: UtcDatetime
    source: str = Field(default="unknown", max_length=64)
    kind: EventKind
    code: str = Field(min_length=1, max_length=64)
    value: FiniteFloat
    unit: str = Field(default="", max_length=32)
    ward: str | None = Field(default=None, max_length=32)


PATIENT_EVENT = TypeAdapter(PatientEvent)


def parse_event_json(data: bytes | str) -> PatientEvent:
    """Validate one JSON event (fast path: pydantic-core parses and validates in one go)."""
    return PATIENT_EVENT.validate_json(data)
