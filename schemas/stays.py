"""The end of a stay, published on ``vigil.stays`` (keyed by patient id).

A ``discharge`` event (Vigil JSON, HL7v2 ADT^A03, FHIR Encounter ``finished``) ends the stay Vigil
scores: the scoring step resolves the patient's active alert, ends the patient's state and publishes
one ``StayEnded``. Monitoring systems close what they hold for the stay; the dashboard takes the
patient off the ward. Stable, versioned contract like ``vigil.alerts``: fields are only added.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

STAY_SCHEMA_VERSION = 1


class StayEnded(BaseModel):
    """One stay ended: who, which encounter, when (patient clock), and what it closed."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = STAY_SCHEMA_VERSION
    patient_id: str
    encounter: str | None = None
    ward: str | None = None  # the ward the patient left
    ended_at: datetime  # the discharge time the event gave (patient clock)
    # the end as Vigil applies it: the discharge time, or the stay's newest observation when later;
    # a record of the patient at or before it is the ended stay's (the dashboard drops it)
    through: datetime | None = None
    event_id: str  # the discharge event: consumers dedupe on it (a redelivered batch repeats it)
    # events of the stay that came in the discharge's own batch, before it: applied, never scored
    # (the patient had left), named here so every accepted event is accounted for
    unscored_event_ids: list[str] = Field(default_factory=list)
    source: str = "unknown"
    resolved_alert: str | None = None  # the alert_id the discharge resolved, if one was active
    hours: int | None = None  # the stay's hours Vigil scored (hour index of its newest row + 1)
    at: datetime  # wall clock: when Vigil ended the stay
