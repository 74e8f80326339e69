"""Patient events: what EHR integrations and monitors produce, and what ingest publishes.

``PatientEvent`` is the one record on ``vigil.events.raw`` (as sent) and ``vigil.events``
(validated, normalized to canonical codes and units). Versioned: ``schema_version``.

Strict where a lax reading would change a score (issue 16): ``value`` must be a JSON number
(``true`` is not a heart rate of 1, ``"8_5"`` is not 85), ``observed_at`` must fall after
``EARLIEST_OBSERVATION`` (a year-1 date is a default value, not a measurement), and identifiers
carry no invisible or control characters (a right-to-left override makes ``‮LIAMS-nhoJ`` render as
another patient's name on the dashboard).
"""

from __future__ import annotations

import math
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, TypeAdapter
from pydantic_core import PydanticCustomError

from vigil.schemas.codes import EventKind

EVENT_SCHEMA_VERSION: Final = 1

# A clock more than this far in the future is a producer bug, not a measurement (clock skew).
MAX_FUTURE_SKEW = timedelta(minutes=15)
# The earliest observation time accepted. No EHR feed streams live observations from before
# electronic records were common (PhysioNet/CinC 2019, the training data, is from 2003-2018);
# dates before it are defaults (0001-01-01, the Unix epoch) or corrupt, and would re-anchor a
# patient's hourly window decades back (models/window.py).
EARLIEST_OBSERVATION = datetime(1990, 1, 1, tzinfo=UTC)

# Unicode categories refused in identifiers: Cc control (NUL, ESC, DEL...), Cf format (bidi
# overrides U+202A-U+202E and U+2066-U+2069, zero-width U+200B-U+200D, U+2060, U+FEFF), Cs
# surrogates, Co private use, Cn unassigned, Zl/Zp line and paragraph separators. Unicode
# Technical Standard #39 (security mechanisms) and CVE-2021-42574 ("Trojan Source") for why.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# pydantic error types of the strict rules: the codecs report them as ``schema`` like JSON intake
STRICT_ERROR_TYPES = frozenset({"hidden_character", "before_earliest_observation", "float_type", "bool_type"})


def hidden_character(value: str) -> str | None:
    """The first character of ``value`` that is invisible or a control (``U+202E``), else None."""
    if value.isascii() and value.isprintable():
        return None  # the usual case, without a per-character lookup
    for ch in value:
        if unicodedata.category(ch) in HIDDEN_CATEGORIES:
            return f"U+{ord(ch):04X}"
    return None


def _visible(value: str) -> str:
    return refuse_hidden_character(value)


def refuse_hidden_character(value: str, checked: str | None = None) -> str:
    """``value``, unless ``checked`` (``value`` itself by default) holds a hidden character: then a
    validation error naming its code point, never the text (details never carry patient identifiers)."""
    bad = hidden_character(value if checked is None else checked)
    if bad is not None:
        raise PydanticCustomError(
            "hidden_character",
            "contains a control, bidi-override or zero-width character ({code_point})",
            {"code_point": bad},
        )
    return value


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("observed_at must carry a timezone (ISO 8601 with offset or Z)")
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-14:00 is past datetime's range in UTC: not a ValueError
        raise PydanticCustomError("datetime_out_of_range", "observed_at is out of range in UTC") from None
    if value < EARLIEST_OBSERVATION:
        raise PydanticCustomError(
            "before_earliest_observation",
            "observed_at is before {floor} (not a plausible observation time)",
            {"floor": f"{EARLIEST_OBSERVATION:%Y-%m-%d}"},
        )
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("value must be a finite number")
    return value


def _trimmed_visible(value: object) -> object:
    # hidden characters are refused before trimming: str.strip() also removes some controls
    # (\x1c-\x1f are whitespace to Python), which would let "p1\x1f" pass as "p1"
    return _visible(value).strip() if isinstance(value, str) else value


# The bounds are keywords of the type (not a check inside a validator) so the published JSON Schemas
# say what is checked: 1-64 characters without spaces, after the outer spaces are trimmed. Checked
# for hidden characters again after: an input that only becomes a str in validation (bytes) too.
PatientId = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^\S+$"),
    BeforeValidator(_trimmed_visible),
    AfterValidator(_visible),
]
UtcDatetime = Annotated[datetime, AfterValidator(_aware_utc)]
# Strict: a JSON number only (an int is a number too); booleans and strings are refused.
FiniteFloat = Annotated[float, Strict(), AfterValidator(_finite)]
Identifier = Annotated[str, AfterValidator(_visible)]


def _an_integer(value: object) -> object:
    """Only a JSON integer is a version: pydantic's ``Literal[1]`` reads ``true`` and ``1.0`` as 1 (it
    compares as Python does, ``True == 1``), and a record that says ``true`` was written by something
    that does not know this contract."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("int_type", "schema_version must be the integer 1")
    return value


# Version 1 is the only one: anything else is a record of a contract this Vigil does not know (a
# ``schema`` dead letter naming ``schema_version``), not one to read as if it were version 1.
SchemaVersion1 = Annotated[Literal[1], BeforeValidator(_an_integer)]


class PatientEvent(BaseModel):
    """One observation, assessment or treatment for one patient at one time."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=256)

    schema_version: SchemaVersion1 = EVENT_SCHEMA_VERSION
    event_id: Identifier = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=64)
    patient_id: PatientId
    encounter: Identifier | None = Field(default=None, max_length=64)
    observed_at: UtcDatetime
    source: Identifier = Field(default="unknown", max_length=64)
    kind: EventKind
    code: Identifier = Field(min_length=1, max_length=64)
    value: FiniteFloat
    unit: Identifier = Field(default="", max_length=32)
    # optional: the patient keeps the newest ward an event named (models.window), so an event
    # without one (a lab from the LIS) is scored, counted and drift-tracked in that ward
    ward: Identifier | None = Field(default=None, max_length=32)


PATIENT_EVENT = TypeAdapter(PatientEvent)


def point_of_care(ward: str) -> str:
    """A ward (HL7v2 PV1-3.1) as the site's unit lists compare it (``ingest.monitored_units``,
    ``ingest.away_units``): without case or outer spaces."""
    return ward.strip().upper()


def parse_event_json(data: bytes | str) -> PatientEvent:
    """Validate one JSON event (fast path: pydantic-core parses and validates in one go)."""
    return PATIENT_EVENT.validate_json(data)
