"""Alert transitions published on ``vigil.alerts`` and acknowledgements on ``vigil.alerts.acks``.

Stable, versioned contract for monitoring systems: fields are only ever added, and
``schema_version`` is bumped on any change of meaning. Every time is aware and published in UTC
(``schemas.times``): an acknowledgement's time without an offset is refused, one with an offset is
read as the same instant in UTC, and one further ahead of the worker's clock than events may be
(``MAX_FUTURE_SKEW``) is refused as a sender's clock error. An acknowledgement's ids carry no
control, bidi-override or zero-width character, as an event's identifiers (``schemas.events``); its
author and note are written by people, and hold the few format characters their writing needs
(``WRITTEN_TEXT_FORMAT_CHARACTERS``) but no other: they reach the operator's terminal (``vigil alerts
tail``), the dashboard and the FHIR performer's display as sent. A note may run over lines (a
paging system's CRLF or CR is read as ``\n``, a tab as a space).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from vigil.schemas.events import MAX_FUTURE_SKEW, Identifier, PatientId, SchemaVersion1, refuse_hidden_character
from vigil.schemas.scores import FeatureContribution, RuleScore
from vigil.schemas.times import PublishedUtcDatetime, UtcDatetime

ALERT_SCHEMA_VERSION: Final = 1

AlertState = Literal["open", "escalated", "acknowledged", "resolved"]
AlertSeverity = Literal["low-medium", "medium", "high"]


class TrendPoint(BaseModel):
    model_config = ConfigDict(frozen=True)

    hour: int
    news2: int
    risk: float | None = None


class AlertExplanation(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule_breakdown: dict[str, int] = Field(default_factory=dict)  # NEWS2 parameter -> points
    missing: list[str] = Field(default_factory=list)
    top_features: list[FeatureContribution] = Field(default_factory=list)
    trend: list[TrendPoint] = Field(default_factory=list)
    score_ids: list[str] = Field(default_factory=list)
    summary: str = ""


class Alert(BaseModel):
    """One transition of one alert (open, escalated, acknowledged, resolved)."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = ALERT_SCHEMA_VERSION
    alert_id: str
    transition_id: str  # unique per transition: consumers dedupe on it
    patient_id: str
    encounter: str | None = None
    ward: str | None = None
    state: AlertState
    severity: AlertSeverity
    trigger: str  # e.g. "news2_band:medium", "model:combined", "news2_single_parameter_3"
    reason: str  # human-readable why this transition happened
    at: PublishedUtcDatetime
    hour: int
    news2: RuleScore | None = None
    risk: float | None = None
    by: str | None = None  # who acknowledged/resolved
    explanation: AlertExplanation = Field(default_factory=AlertExplanation)
    # added in place (schema_version 1): the alert's "then" beside this transition's "now"
    opened_at: PublishedUtcDatetime | None = None  # patient clock: the observation that opened the alert
    opened_news2: int | None = None
    opened_risk: float | None = None
    threshold: float | None = None  # the combined model's alert threshold at this transition
    vitals: dict[str, float | None] = Field(default_factory=dict)  # values behind the NEWS2 points
    note: str | None = None  # the clinician's note on an acknowledgement, resolution or snooze
    snoozed_until: PublishedUtcDatetime | None = None


SNOOZE_MIN = (15, 30, 60, 120, 240)  # the snooze lengths offered (minutes)


def _not_ahead(value: datetime) -> datetime:
    # A paging system's clock ahead would stretch a snooze (it ends at ``at`` + snooze_min) and make
    # the answer look newer than a later raise: the same bound as an event's observed_at
    # (schemas.normalize, clock_skew), checked against this worker's clock when the answer is read.
    if value > datetime.now(UTC) + MAX_FUTURE_SKEW:
        raise PydanticCustomError(
            "clock_skew",
            "at is more than {minutes} minutes ahead of the current time (the sender's clock is wrong)",
            {"minutes": int(MAX_FUTURE_SKEW.total_seconds() // 60)},
        )
    return value


AnswerTime = Annotated[UtcDatetime, AfterValidator(_not_ahead)]


# What people write holds a few format characters (Unicode category Cf, refused in an identifier by
# ``HIDDEN_CATEGORIES``) that neither hide nor reorder what a terminal or the dashboard shows: the
# soft hyphen of a word processor, the zero-width non-joiner of Persian names (U+200C), the zero-width
# joiner inside emoji (U+200D, the health worker), the left-to-right and right-to-left marks that
# Hebrew and Arabic keyboards insert (U+200E, U+200F). These, and only these, are the difference
# between an answer's author and note and an identifier: every other control and format character is
# refused as in an identifier, the bidi embeddings, overrides and isolates (U+202A-U+202E,
# U+2066-U+2069) that reorder a line (CVE-2021-42574, "Trojan Source") and the escapes that drive a
# terminal (ESC, BEL) included. A refused answer leaves the alert open, paging again.
WRITTEN_TEXT_FORMAT_CHARACTERS = frozenset({"\u00ad", "\u200c", "\u200d", "\u200e", "\u200f"})
_WITHOUT_WRITTEN_TEXT_FORMAT = str.maketrans(dict.fromkeys(WRITTEN_TEXT_FORMAT_CHARACTERS))


def _visible_as_written(value: str) -> str:
    """``value`` if it holds no hidden character (``hidden_character``) but those people write
    (``WRITTEN_TEXT_FORMAT_CHARACTERS``); the code point, never the text, goes into the message (it
    reaches dead letters)."""
    return refuse_hidden_character(value, value.translate(_WITHOUT_WRITTEN_TEXT_FORMAT))


def _visible_but_line_breaks(value: str) -> str:
    """A note may run over lines (a snooze's reason): a paging system's CRLF or lone CR is read as a
    line break (a CR alone would write over the line in a terminal) and a tab as a space, then the note
    is checked as an author is (``_visible_as_written``)."""
    note = value.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    _visible_as_written(note.replace("\n", " "))
    return note


# bounded before its characters are looked at (a bound on the field would come after the check)
AnswerNote = Annotated[str, Field(max_length=500), AfterValidator(_visible_but_line_breaks)]
# who answered: a clinician's name or a paging system's user, written by people (not an identifier)
AnswerAuthor = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_visible_as_written)]


class AlertAck(BaseModel):
    """Acknowledge, snooze or resolve an alert (from the dashboard, the CLI or a paging system).

    A snooze is an acknowledgement with an end: the alert is quiet for ``snooze_min`` minutes and
    opens again if the patient is still at an alert level; it needs a reason (``note``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # added in place (optional): a sender that copies the alert's ``schema_version`` into its answer
    # had every answer dead-lettered (an unknown field); 1 is the only version, absent reads as 1 and
    # null is refused, as the published JSON Schema says. Read, never written: the answers Vigil
    # publishes itself (dashboard, CLI) leave it out, so a worker of the release before, which forbids
    # the field, still reads them during a rolling upgrade
    schema_version: SchemaVersion1 = Field(default=ALERT_SCHEMA_VERSION, exclude=True)
    alert_id: Identifier = Field(min_length=1, max_length=64)
    patient_id: PatientId  # as an event's: the outer spaces trimmed, none inside
    action: Literal["acknowledge", "resolve", "snooze"]
    by: AnswerAuthor
    at: AnswerTime  # when it was given: with an offset (UTC when published), not ahead of the clock
    note: AnswerNote | None = None
    snooze_min: int | None = Field(default=None, ge=5, le=24 * 60)

    @model_validator(mode="after")
    def _snooze_has_length_and_reason(self) -> AlertAck:
        if self.action == "snooze" and (self.snooze_min is None or not (self.note or "").strip()):
            raise ValueError("a snooze needs snooze_min and a reason (note)")
        if self.action != "snooze" and self.snooze_min is not None:
            raise ValueError("snooze_min is only for action 'snooze'")
        return self
