"""Where a patient's stay ends and the next one begins (pure).

Patient ids are record numbers (HL7v2 PID-3 ``MR``, FHIR ``Patient``): the same id comes back when
the patient is admitted again. A ``discharge`` event (``schemas.codes.ENCOUNTERS``) ends the stay
Vigil scores: the window keeps only its stream position, its ward and the end (``ended_s``,
``ended_encounter``); the stepping carry (aggregates since admission: ICU hours, running max/min)
and the care clock are deleted, and the alert lifecycle starts afresh. Without this, a patient
admitted again would be scored with the first stay's hours and extremes, and keep its alert.

An event after a discharge is either late data of the ended stay (observed at or before its end,
or naming its encounter): a ``stay_ended`` dead letter, counted, never scored for a patient who has
left; or the first event of the next stay (observed after the end, another or no encounter): a
fresh window from its hour 0, as the models were trained (one PhysioNet file per stay).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from vigil.models.alerting import PatientAlertState, on_discharge
from vigil.models.window import PatientWindow
from vigil.schemas.alerts import Alert
from vigil.schemas.codes import DISCHARGE
from vigil.schemas.deadletter import Rejected
from vigil.schemas.events import PatientEvent
from vigil.schemas.stays import StayEnded

StayOf = Literal["current", "ended", "new"]


def is_discharge(event: PatientEvent) -> bool:
    return event.kind == "encounter" and event.code == DISCHARGE


def stay_of(window: PatientWindow, event: PatientEvent) -> StayOf:
    """Which stay ``event`` belongs to: the one the window holds, the one that ended, or a new one.
    A discharge from before the current stay's hour 0 ended an earlier stay (an ADT message sent
    late or again): it must not end the stay that goes on."""
    if window.ended_s is None:
        if is_discharge(event) and window.anchor_s is not None and event.observed_at.timestamp() < window.anchor_s:
            return "ended"
        return "current"
    if event.encounter is not None and event.encounter == window.ended_encounter:
        return "ended"
    if event.observed_at.timestamp() <= window.ended_s:
        return "ended"
    return "new"


def stay_ended_rejection(window: PatientWindow, event: PatientEvent) -> Rejected:
    """The dead letter of an event of the ended stay (no identifiers, no values): ``duplicate`` for
    the same discharge sent again, ``stay_ended`` for anything else."""
    if window.ended_s is None:  # a discharge of a stay before the one that goes on
        return Rejected("stay_ended", f"{event.code}: before the current stay's first hour (of an earlier stay)")
    at = datetime.fromtimestamp(window.ended_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if is_discharge(event) and int(event.observed_at.timestamp()) == window.ended_s:
        return Rejected("duplicate", f"discharge: the stay already ended at {at}")
    return Rejected("stay_ended", f"{event.code}: of a stay that ended at {at} (discharge)")


@dataclass(frozen=True)
class Discharge:
    """What a discharge does: the window it leaves, the alert it resolves, the record it publishes."""

    window: PatientWindow
    alerts: list[Alert]
    record: StayEnded


def discharge(
    window: PatientWindow,
    alert: PatientAlertState,
    event: PatientEvent,
    now: datetime,
    unscored: list[str] | None = None,
) -> Discharge:
    """End the stay ``window`` holds at ``event`` (a discharge); ``alert`` starts afresh (mutated).
    ``unscored``: events applied to the stay in the discharge's batch, before it, never scored."""
    ward = event.ward or window.ward
    resolved = on_discharge(alert, event.observed_at, event.encounter, ward)
    record = StayEnded(
        patient_id=event.patient_id,
        encounter=event.encounter,
        ward=ward,
        ended_at=event.observed_at,
        event_id=event.event_id,
        unscored_event_ids=list(unscored or []),
        source=event.source,
        resolved_alert=resolved[0].alert_id if resolved else None,
        hours=stay_hours(window),
        at=now,
    )
    return Discharge(end_stay(window, event), resolved, record)


def end_stay(window: PatientWindow, discharge: PatientEvent) -> PatientWindow:
    """The window a discharge leaves: no rows, the stream position, the ward left, and the end."""
    return PatientWindow(
        position=window.position,
        ward=discharge.ward or window.ward,
        ended_s=int(discharge.observed_at.timestamp()),
        ended_encounter=discharge.encounter,
    )


def next_stay(window: PatientWindow) -> PatientWindow:
    """A fresh window for the next stay, keeping the stream position (redeliveries are still told
    from new messages) and the newest ward (the new stay's events usually name theirs)."""
    return PatientWindow(position=window.position, ward=window.ward)


def stay_hours(window: PatientWindow) -> int | None:
    """The hours of the stay the window holds (its newest hour index + 1), None before any row."""
    return window.last_hour + 1 if window.anchor_s is not None and window.last_hour >= 0 else None
