"""A stay's end, and the cancel of an end, published on ``vigil.stays`` (keyed by patient id).

A ``discharge`` event (Vigil JSON, HL7v2 ADT^A03, FHIR Encounter ``finished``), a ``transfer_out``
(HL7v2 ADT^A02 out of the monitored units) or a ``cancel_admit`` (HL7v2 ADT^A11, FHIR Encounter
``cancelled`` / ``entered-in-error``, naming the stay's visit) ends the stay Vigil scores: the scoring step resolves the
patient's active alert, ends the patient's state and publishes one ``StayEnded`` (``ended_by``).
Monitoring systems close what they hold for the stay; the dashboard takes the patient off the ward.
A ``cancel_discharge`` (HL7v2 ADT^A13: the discharge was entered in error) or ``cancel_transfer``
(ADT^A12) resumes that stay with its history and publishes one ``StayResumed``: the dashboard shows
the patient again.

Stable, versioned contract like ``vigil.alerts``: fields are only added. Since schema version 2 the
topic holds two records, told apart by ``record`` (``stay_ended``, ``stay_resumed``); a record
without ``record`` is a version 1 ``StayEnded``. A consumer skips a ``record`` it does not know.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

STAY_SCHEMA_VERSION = 2
# what ended a stay (``StayEnded.ended_by``)
EndedBy = Literal["discharge", "transfer_out", "cancel_admit"]


class StayEnded(BaseModel):
    """One stay ended: who, which encounter, when (patient clock), and what it closed."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = STAY_SCHEMA_VERSION
    record: Literal["stay_ended"] = "stay_ended"
    patient_id: str
    encounter: str | None = None
    ward: str | None = None  # the ward the patient left
    ended_at: datetime  # the discharge time the event gave (patient clock)
    # the end as Vigil applies it: the discharge time, or the stay's newest observation when later;
    # a record of the patient at or before it is the ended stay's (the dashboard drops it)
    through: datetime | None = None
    event_id: str  # the discharge event: consumers dedupe on it (a redelivered batch repeats it)
    # what ended it: the patient was discharged (or died), or moved out of the monitored units to a
    # ward (``transfer_out``; ``ward`` is then the unit left), or the admission was cancelled
    # (``cancel_admit``: entered in error, or not admitted after all). Added in schema version 2's life.
    ended_by: EndedBy = "discharge"
    # events of the stay that came in the discharge's own batch, before it: applied, never scored
    # (the patient had left), named here so every accepted event is accounted for
    unscored_event_ids: list[str] = Field(default_factory=list)
    source: str = "unknown"
    resolved_alert: str | None = None  # the alert_id the discharge resolved, if one was active
    hours: int | None = None  # the stay's hours Vigil scored (hour index of its newest row + 1)
    at: datetime  # wall clock: when Vigil ended the stay


class StayResumed(BaseModel):
    """A discharge was cancelled: the stay it ended goes on, scored with its whole history (what was
    recorded since the discharge included). Its first score follows on ``vigil.scores``."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = STAY_SCHEMA_VERSION
    record: Literal["stay_resumed"] = "stay_resumed"
    patient_id: str
    encounter: str | None = None
    ward: str | None = None
    cancelled_at: datetime  # the cancel's time (patient clock)
    # the end it cancels (``StayEnded.through`` of that stay): records of the patient after it that
    # the dashboard dropped as a next stay's are this stay's again
    cancelled_end: datetime
    event_id: str  # the cancel event: consumers dedupe on it
    # what the cancel undid: a discharge entered in error (``cancel_discharge``), or a transfer out of
    # the monitored units (``cancel_transfer``). Added in schema version 2's life.
    cancelled_by: Literal["cancel_discharge", "cancel_transfer"] = "cancel_discharge"
    source: str = "unknown"
    hours: int | None = None  # the resumed stay's hours (hour index of its newest row + 1)
    # hours recorded after the discharge, first scored as a new stay, now folded back into this one
    folded_hours: int = 0
    at: datetime  # wall clock: when Vigil resumed the stay


StayRecord = StayEnded | StayResumed


class StayRecords(RootModel[StayEnded | StayResumed]):
    """The topic's JSON Schema: either record (``schemas.export``)."""


def parse_stay_record(raw: bytes | str) -> StayRecord:
    """One ``vigil.stays`` record; raises ``ValueError`` (pydantic's ``ValidationError`` included)
    for one that does not parse or whose ``record`` this version does not know."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("a vigil.stays record is a JSON object")
    kind = data.get("record", "stay_ended")
    if kind == "stay_ended":
        return StayEnded.model_validate(data)
    if kind == "stay_resumed":
        return StayResumed.model_validate(data)
    raise ValueError(f"unknown vigil.stays record {kind!r}")
