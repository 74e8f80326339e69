"""Where a patient's stay ends and the next one begins (pure).

Patient ids are record numbers (HL7v2 PID-3 ``MR``, FHIR ``Patient``): the same id comes back when
the patient is admitted again. A ``discharge`` event (``schemas.codes.ENCOUNTERS``) ends the stay
Vigil scores: the window keeps only its stream position, its ward and the end (``ended_s``: the
later of the discharge time and the stay's newest observation; ``ended_encounter``); the stepping
carry (aggregates since admission: ICU hours, running max/min) and the care clock are deleted, and
the alert lifecycle starts afresh. Without this, a patient admitted again would be scored with the
first stay's hours and extremes, and keep its alert.

An event after a discharge is either late data of the ended stay (observed at or before its end): a
``stay_ended`` dead letter, counted, never scored for a patient who has left; or the first event of
the next stay (observed after the end): a fresh window from its hour 0, as the models were trained
(one PhysioNet file per stay). A patient discharged in error whose monitors go on sending is thus
scored again at once, as a new stay (``ADT^A13``, cancel discharge, does not restore the stay).

A discharge that cannot be this stay's end is refused, not applied: one for a patient with no stay
(never scored, or nothing since the last end: ``unknown_stay``; a hospital-wide ADT feed sends every
discharge), one from before the stay's first observation (an earlier stay's message sent late or
again: ``stay_ended``), one naming another encounter than the stay's events name
(``other_encounter``: an emergency-department visit that ended while the ICU stay goes on).
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

# current: the stay the window holds; new: the first event after an end; the others are refused
StayOf = Literal["current", "new", "ended", "earlier", "unknown", "other"]


def is_discharge(event: PatientEvent) -> bool:
    return event.kind == "encounter" and event.code == DISCHARGE


def stay_of(window: PatientWindow, event: PatientEvent) -> StayOf:
    """Which stay ``event`` belongs to (see the module's rules); times compare in whole seconds, as
    the window stores them."""
    at = int(event.observed_at.timestamp())
    if window.ended_s is not None:
        if at <= window.ended_s:
            return "ended"
        return "unknown" if is_discharge(event) else "new"
    if window.after_s is not None and at <= window.after_s:
        return "ended"  # a late event of the stay before, after the next one began
    if not is_discharge(event):
        return "current"
    span = window.observed_span()
    if span is None:
        return "unknown"
    if at < span[0]:
        return "earlier"
    if event.encounter and window.encounter and event.encounter != window.encounter:
        return "other"
    return "current"


def in_stay(window: PatientWindow, at: datetime) -> bool:
    """Whether a record of the patient at ``at`` (a score's newest observation, a care clock's time
    zero) is of the stay ``window`` holds: not after a discharge ended it, not of the stay before (at
    or before the previous end, or before this stay's hour 0). The treatment agent reads scores and
    its care clock against the window they may have outlived."""
    if window.ended_s is not None:
        return False
    t = int(at.timestamp())
    if window.after_s is not None and t <= window.after_s:
        return False
    return window.anchor_s is None or t >= window.anchor_s


def _utc(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stay_rejection(window: PatientWindow, event: PatientEvent, of: StayOf) -> Rejected:
    """The dead letter of an event ``stay_of`` refused (no identifiers, no values)."""
    if of == "unknown":
        return Rejected("unknown_stay", "discharge: Vigil holds no stay of this patient to end")
    if of == "other":
        return Rejected("other_encounter", "discharge: names another encounter than the stay's events")
    end = window.ended_s if window.ended_s is not None else window.after_s
    if of == "earlier" or end is None:
        return Rejected("stay_ended", f"{event.code}: before the current stay's first observation (an earlier stay)")
    at = _utc(end)
    if is_discharge(event) and int(event.observed_at.timestamp()) == end:
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
    ended = end_stay(window, event)
    assert ended.ended_s is not None
    record = StayEnded(
        patient_id=event.patient_id,
        encounter=ended.ended_encounter,
        ward=ward,
        ended_at=event.observed_at,
        through=datetime.fromtimestamp(ended.ended_s, tz=UTC),
        event_id=event.event_id,
        unscored_event_ids=list(unscored or []),
        source=event.source,
        resolved_alert=resolved[0].alert_id if resolved else None,
        hours=stay_hours(window),
        at=now,
    )
    return Discharge(ended, resolved, record)


def end_stay(window: PatientWindow, discharge: PatientEvent) -> PatientWindow:
    """The window a discharge leaves: no rows, the stream position, the ward left, and the end: the
    discharge time, or the stay's newest observation when that is later (a monitor that sent on
    after the recorded time): an event at or before it is the ended stay's, never the next one's."""
    span = window.observed_span()
    at = int(discharge.observed_at.timestamp())
    return PatientWindow(
        position=window.position,
        ward=discharge.ward or window.ward,
        ended_s=max(at, span[1]) if span else at,
        ended_encounter=discharge.encounter or window.encounter,
    )


def next_stay(window: PatientWindow) -> PatientWindow:
    """A fresh window for the next stay, keeping the stream position (redeliveries are still told
    from new messages), the newest ward (the new stay's events usually name theirs) and the end of
    the stay before (its late events are still refused, never applied to this stay)."""
    return PatientWindow(position=window.position, ward=window.ward, after_s=window.ended_s)


def stay_hours(window: PatientWindow) -> int | None:
    """The hours of the stay the window holds (its newest hour index + 1), None before any row."""
    return window.last_hour + 1 if window.anchor_s is not None and window.last_hour >= 0 else None
