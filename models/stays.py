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
scored again at once, as a new stay.

A discharge entered in error is cancelled (``cancel_discharge``, HL7v2 ``ADT^A13``): the ended stay
was held at its discharge (``HeldStay``: its window with its rows, and its carry), and ``resume``
gives it back, with whatever the next stay recorded since folded in at the times observed: one stay
again, its hours counted from its own admission, as if the discharge had never come. A late result
of the ended stay is dead-lettered ``stay_ended`` and also kept in the held stay (``keep_late``), so
a resumed stay has it. A cancel with no ended stay to resume (none held, or the stay is open and not
the one after a held end) is an ``unknown_stay`` dead letter; one naming another encounter than the
discharge, or whose next stay names another encounter (a readmission), is ``other_encounter``. After
a cancel, the cancelled discharge sent again (at its own time) is a ``duplicate``, and so is the
cancel sent again; a cancel from before the discharge held is ``stay_ended``.

A discharge that cannot be this stay's end is refused, not applied: one for a patient never scored
(``unknown_stay``; a hospital-wide ADT feed sends every discharge), one from before the stay's first
observation (an earlier stay's message sent late or again: ``stay_ended``), one naming another
encounter than the stay's events name (``other_encounter``: an emergency-department visit that ended
while the ICU stay goes on), one followed in the stay's observations by a gap of ``READMISSION_GAP_S``
or more and, after it, by what looks like a stay (``late_discharge``: the A03 of the stay before,
delayed in an interface engine until after the readmission's first events; applied, it ended the
readmitted patient's stay). A limit, not a split: the readmission goes on in the window that holds
the stay before, as if no discharge had come (its hours counted from the first admission), and the
operators see the refused discharge; the readmitted patient keeps the alert and the ward view. A
discharge naming the visit the stay's events name is never refused so (one visit is no readmission;
a readmission whose events name no visit keeps the stay's, and such a delayed A03 ends it, as before
the rule), and neither is one followed by a few stray readings (a monitor left bound to the patient):
applied, their end is the newest of them (``end_stay``).

A ``cancel_admit`` (the admission was entered in error, or the patient was not admitted after all:
HL7v2 ADT^A11) ends the stay as a discharge does, but only the stay whose events name the visit it
cancels: one naming no visit, or another, or a stay whose events name none, is ``other_encounter``
(a hospital-wide ADT feed cancels outpatient visits of patients who are in the ICU).

A ``transfer_out`` (the patient moved out of the monitored units to a ward; ``schemas.codes``) ends
the stay as a discharge does, and its ``cancel_transfer`` resumes it as a ``cancel_discharge`` does.
The codec cannot tell from one ADT^A02 whether the patient was in the ICU (MICU -> OR -> 4WEST: the
second move leaves theatre); the patient's state can: an end with no open stay to end, a discharge
after the stay had ended, or a cancelled transfer that had ended no stay is ``NO_OPEN_STAY``, not an
error. So is a result from an away unit (theatre, imaging: ``ingest.away_units``) of a patient with
no open stay: a stay begins in a monitored unit, and a ward patient in theatre (low blood pressure
under anaesthesia) is not the ICU's to be paged for; a patient whose stay is open is scored there.
After a transfer out (``PatientWindow.ended_by``) a result other than a vital sign naming no ward is
``NO_OPEN_STAY`` too: a lab from the LIS (an ORU without PV1) of a patient now on a ward opened a new
ICU stay at hour 0 that paged the ICU. A vital sign naming no ward comes from the monitored units'
own gateways (a ward's are sent with its ward, and not scored): it begins the next stay, as a result
naming a monitored unit does (a patient back in the ICU whose monitors name no ward is scored again;
the ADT^A02 back in is not read). A hospital discharge after the transfer (``releases_held``) makes
the tombstone a discharge's: after it, a result naming no ward begins the next stay too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final, Literal

from vigil.models.alerting import ADMISSION_CANCELLED, DISCHARGED, TRANSFERRED, PatientAlertState, on_discharge
from vigil.models.stepping import StayCarry
from vigil.models.window import WINDOW_HOURS, LateEvent, PatientWindow
from vigil.schemas.alerts import Alert
from vigil.schemas.codes import (
    CANCEL_ADMIT,
    CANCEL_DISCHARGE,
    CANCEL_TRANSFER,
    CATALOGUE,
    DISCHARGE,
    DYNAMIC_CODES,
    STAY_CANCELS,
    STAY_ENDS,
    TRANSFER_OUT,
)
from vigil.schemas.deadletter import Rejected
from vigil.schemas.events import PatientEvent, point_of_care
from vigil.schemas.stays import EndedBy, StayEnded, StayResumed

# current: the stay the window holds; new: the first event after an end; the others are refused
# (none: an end with nothing to end and nothing wrong, ``NO_OPEN_STAY``)
StayOf = Literal["current", "new", "none", "ended", "earlier", "unknown", "other", "cancelled", "late"]
# The dead letter of an ADT event that had nothing to end or resume, and nothing wrong with it: a
# transfer out for a patient Vigil holds no open stay of (from theatre to a ward, never in the ICU),
# a discharge after the stay had ended (the hospital's discharge days after a transfer out ended it),
# a cancelled transfer that had ended no stay (a move between ICUs). Told apart from ``unknown_stay``
# (a discharge or its cancel that found nothing to act on); dead-lettered all the same, so that
# every accepted event is accounted for.
NO_OPEN_STAY = "no_open_stay"
# A gap at least this long in the stay's observations after a discharge's time, followed by a run of
# observations that looks like a stay, says they are a later stay's (a readmission whose first events
# came before the delayed A03 of the stay before), not a monitor that sent on after the recorded time
# (those follow it within minutes). Two hours: an ICU charts vital signs at least hourly, and a patient
# discharged and admitted again is away for longer.
READMISSION_GAP_S: Final = 2 * 3600
# What the run after the gap must hold to be a stay's, not a few stray readings of a monitor still
# bound to the patient (unplugged, then a reading before it was cleared): at least this many
# observations (a window cell, one per variable and hour, or a treatment: a minute-rate monitor counts
# once per hour) over at least this long: two hourly rounds of an ICU's vital signs at the least. A
# readmission younger than that when the delayed A03 comes is ended by it, as before the rule; its
# next events begin its stay again at once, where a refused discharge left its patient's stay and
# alert open for good.
READMISSION_MIN_OBSERVATIONS: Final = 6
READMISSION_MIN_SPAN_S: Final = 2 * 3600
# what each end is published as (``StayEnded.ended_by``) and the resolution of the stay's alert
ENDED_BY: Final[dict[str, tuple[EndedBy, str]]] = {
    DISCHARGE: (DISCHARGE, DISCHARGED),
    TRANSFER_OUT: (TRANSFER_OUT, TRANSFERRED),
    CANCEL_ADMIT: (CANCEL_ADMIT, ADMISSION_CANCELLED),
}


def is_discharge(event: PatientEvent) -> bool:
    """An end of the stay: a discharge, or a transfer out of the monitored units."""
    return event.kind == "encounter" and event.code in STAY_ENDS


def is_cancel(event: PatientEvent) -> bool:
    """A cancel of the patient's last discharge or transfer out (``resume``)."""
    return event.kind == "encounter" and event.code in STAY_CANCELS


def stay_of(
    window: PatientWindow, event: PatientEvent, discharged_s: int | None = None, away: frozenset[str] = frozenset()
) -> StayOf:
    """Which stay ``event`` belongs to (see the module's rules); times compare in whole seconds, as
    the window stores them. ``discharged_s``: the time of the patient's last discharge Vigil held
    (``StayKeys``); on a stay that goes on, a discharge at that very time is that discharge sent
    again after its cancel, not a second end (a corrected A03, at another time, ends the stay).
    ``away``: the site's away units (``point_of_care`` names), whose results open no stay."""
    at = int(event.observed_at.timestamp())
    if window.ended_s is not None:
        if at <= window.ended_s:
            return "ended"
        if is_discharge(event) or from_away(event, away) or on_the_ward(window, event):
            return "none"  # an end after the end: nothing left to end; theatre, a ward: no stay to score in
        return "new"
    if window.after_s is not None and at <= window.after_s:
        return "ended"  # a late event of the stay before, after the next one began
    if not is_discharge(event):  # from theatre with no stay to score in (never scored): none
        return "none" if from_away(event, away) and window.observed_span() is None else "current"
    span = window.observed_span()
    if span is None:  # never scored: a discharge from a hospital-wide feed, a surgical patient's transfer
        return "none" if event.code == TRANSFER_OUT else "unknown"
    if discharged_s is not None and at == discharged_s:
        return "cancelled"  # also once the resumed stay's first rows left the 48-hour window
    if at < span[0]:
        return "earlier"
    if event.encounter and window.encounter and event.encounter != window.encounter:
        return "other"
    same_visit = bool(event.encounter) and event.encounter == window.encounter
    if event.code == CANCEL_ADMIT and not same_visit:
        return "other"  # a cancelled admission ends the stay of the visit it names, never a guess
    if not same_visit and readmitted_since(window, at):
        return "late"  # the visit the stay's events name ends: never a readmission's
    return "current"


def on_the_ward(window: PatientWindow, event: PatientEvent) -> bool:
    """Whether ``event`` is a result of a patient a transfer out took to a ward, naming no ward and not
    a vital sign (a lab from the LIS, an ORU without PV1): the ward's, not the first of a new ICU stay
    scored from hour 0 that pages the ICU. Results from a ward are never sent on (``unmonitored_unit``).
    A vital sign naming no ward is a monitored unit's gateway's (the patient is back in the ICU: the
    ADT^A02 back in is not read) and begins the next stay, as one naming a monitored unit does;
    refused, such a patient was never scored again."""
    return window.ended_by == TRANSFER_OUT and event.ward is None and event.kind != "vital" and not is_cancel(event)


def readmitted_since(window: PatientWindow, at: int) -> bool:
    """Whether the stay's observations after ``at`` (a discharge's time) hold, past a gap of at least
    ``READMISSION_GAP_S``, a run that looks like a stay (``READMISSION_MIN_OBSERVATIONS`` over
    ``READMISSION_MIN_SPAN_S``, with no such gap inside): a later stay's, whose first events came
    before the delayed discharge of the stay before. Ending the stay there would end the readmitted
    patient's (alert resolved, off the ward view); the discharge is refused ``late_discharge`` instead.
    A stray reading or two past a gap (a monitor unplugged, then one reading before it was cleared)
    is no stay: refused, the genuine discharge left the stay and its alert open, each stray reading
    keeping it alive."""
    after = sorted(t for t in window.observed_times() if t > at)
    return any(
        len(run) >= READMISSION_MIN_OBSERVATIONS and run[-1] - run[0] >= READMISSION_MIN_SPAN_S
        for run in _runs_after_gaps(at, after)
    )


def _runs_after_gaps(at: int, times: list[int]) -> list[list[int]]:
    """The runs of ``times`` (sorted, after ``at``) that each follow a gap of ``READMISSION_GAP_S`` or
    more and end at the next one; what follows ``at`` without such a gap is the stay's own."""
    runs: list[list[int]] = []
    previous = at
    for t in times:
        if t - previous >= READMISSION_GAP_S:
            runs.append([])
        if runs:
            runs[-1].append(t)
        previous = t
    return runs


def releases_held(window: PatientWindow, held: HeldStay | None, event: PatientEvent, of: StayOf) -> bool:
    """Whether ``event`` lets go of the held stay: a hospital discharge after the stay had ended (a
    transfer took the patient to a ward, whose discharge this is). A cancel of this discharge returns
    the patient to the ward, not to the ICU stay: resumed, that stay was scored 73 hours on from old
    vital signs and paged with nothing left to resolve it. A copy of the held end (same time) does not.

    When it does, the tombstone (``window``, which the scoring step writes with the release) forgets
    the transfer (``ended_by``): the patient left the hospital from the ward, so a result naming no
    ward is no longer the ward's (``on_the_ward``) but the next stay's, as after any discharge; kept,
    every such result was refused ``no_open_stay`` until the state expired."""
    released = (
        of == "none"
        and event.code == DISCHARGE
        and held is not None
        and window.ended_s is not None
        and int(event.observed_at.timestamp()) > window.ended_s
    )
    if released:
        window.ended_by = None
    return released


def stay_encounter(window: PatientWindow, event: PatientEvent) -> str | None:
    """The encounter the stay's events name, after ``event`` was applied: the newest observation's.
    A late result of an earlier visit (an ED lactate read after the ICU's vital signs) names its own,
    and taken as the stay's it made the ICU's discharge "another encounter" and let the ED's end the
    ICU stay."""
    span = window.observed_span()
    newest = span is None or int(event.observed_at.timestamp()) >= span[1]
    return (event.encounter or window.encounter) if newest else (window.encounter or event.encounter)


def from_away(event: PatientEvent, away: frozenset[str]) -> bool:
    """A result sent from an away unit (theatre, imaging), by its ward."""
    return bool(away) and event.ward is not None and point_of_care(event.ward) in away


def last_end(window: PatientWindow) -> int | None:
    """The end (epoch s) a late event is told by: of the stay the window ended, else of the stay
    before the one it holds; None when the patient has no ended stay."""
    return window.ended_s if window.ended_s is not None else window.after_s


def needs_held(window: PatientWindow, event: PatientEvent) -> bool:
    """Whether the scoring step reads the patient's held stay for ``event`` (``StayKeys``): a
    discharge or its cancel, or a late event of a stay that ended (rare: most batches read none)."""
    if event.kind == "encounter":
        return True
    end = last_end(window)
    return end is not None and int(event.observed_at.timestamp()) <= end


def in_stay(window: PatientWindow, at: datetime) -> bool:
    """Whether a record of the patient at ``at`` (a score's newest observation, a care clock's time
    zero) is of the stay ``window`` holds: not after a discharge ended it, not of the stay before (at
    or before the previous end, or more than ``WINDOW_HOURS`` before this stay's hour 0: a clock that
    a care batch racing a discharge wrote again outlives the ended stay's state). The treatment agent
    reads scores and its care clock against the window they may have outlived. Not hour 0 itself: a
    rules-only score before the first measurement (an ACVPU at 08:20, charted again at 09:20) starts
    a care clock that the first vital signs at 10:30, hour 0 since bundle 2.7.0, must not drop; a
    window waits at most that long for its first measurement (``PatientWindow.apply``)."""
    if window.ended_s is not None:
        return False
    t = int(at.timestamp())
    if window.after_s is not None and t <= window.after_s:
        return False
    return window.anchor_s is None or t >= window.anchor_s - WINDOW_HOURS * 3600


def _utc(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stay_rejection(window: PatientWindow, event: PatientEvent, of: StayOf) -> Rejected:
    """The dead letter of an event ``stay_of`` refused (no identifiers, no values)."""
    code = event.code
    if of == "none":  # nothing wrong: the patient left no stay Vigil holds open (``NO_OPEN_STAY``)
        if on_the_ward(window, event) and window.ended_s is not None:
            return Rejected(
                NO_OPEN_STAY,
                f"{code}: names no ward, after a transfer out of the monitored units at {_utc(window.ended_s)} "
                "(a stay begins with a vital sign, or a result from a monitored unit)",
            )
        if not is_discharge(event):  # a result from an away unit
            return Rejected(
                NO_OPEN_STAY,
                f"{code}: from {event.ward}, an away unit, with no open stay (a stay begins in a monitored unit)",
            )
        if window.ended_s is not None:
            return Rejected(NO_OPEN_STAY, f"{code}: the stay had ended already, at {_utc(window.ended_s)}")
        return Rejected(NO_OPEN_STAY, f"{code}: Vigil holds no open stay of this patient (not in the monitored units)")
    if of == "unknown":
        return Rejected("unknown_stay", f"{code}: Vigil holds no stay of this patient to end")
    if of == "other":
        if code == CANCEL_ADMIT and not (event.encounter and window.encounter):
            missing = "it names none" if not event.encounter else "the stay's events name none"
            return Rejected(
                "other_encounter", f"{code}: ends only the stay whose events name the visit it cancels ({missing})"
            )
        return Rejected("other_encounter", f"{code}: names another encounter than the stay's events")
    if of == "cancelled":
        return Rejected("duplicate", f"{code}: this end was cancelled (ADT^A13, ADT^A12): the stay goes on")
    if of == "late":
        return Rejected(
            "late_discharge",
            f"{code}: at {_utc(int(event.observed_at.timestamp()))}, before observations of a later stay "
            f"(a gap of {READMISSION_GAP_S // 3600} h or more after it, then {READMISSION_MIN_OBSERVATIONS} "
            f"observations or more over {READMISSION_MIN_SPAN_S // 3600} h or more): not applied, the stay goes on",
        )
    end = last_end(window)
    if of == "earlier" or end is None:
        return Rejected("stay_ended", f"{event.code}: before the current stay's first observation (an earlier stay)")
    at = _utc(end)
    if is_discharge(event) and int(event.observed_at.timestamp()) == end:
        return Rejected("duplicate", f"{code}: the stay already ended at {at}")
    return Rejected("stay_ended", f"{event.code}: of a stay that ended at {at} (discharge)")


@dataclass(frozen=True)
class HeldStay:
    """An ended stay as it was at its discharge, kept beside the tombstone until the state's TTL so
    that a cancel can resume it: the window with its rows and the end (``ended_s``), and the
    stepping carry (aggregates since admission)."""

    window: PatientWindow
    carry: StayCarry | None


@dataclass(frozen=True)
class Discharge:
    """What a discharge does: the window it leaves, the alert it resolves, the record it publishes,
    and the stay it holds for a cancel."""

    window: PatientWindow
    alerts: list[Alert]
    record: StayEnded
    held: HeldStay


def discharge(
    window: PatientWindow,
    alert: PatientAlertState,
    event: PatientEvent,
    now: datetime,
    unscored: list[str] | None = None,
    carry: StayCarry | None = None,
) -> Discharge:
    """End the stay ``window`` holds at ``event`` (a discharge); ``alert`` starts afresh (mutated).
    ``unscored``: events applied to the stay in the discharge's batch, before it, never scored;
    ``carry``: the stay's stepping carry, held with its window."""
    ward = event.ward or window.ward
    ended_by, reason = ENDED_BY[event.code]
    resolved = on_discharge(alert, event.observed_at, event.encounter, ward, reason)
    ended = end_stay(window, event)
    assert ended.ended_s is not None
    kept = replace(copy.deepcopy(window), ended_s=ended.ended_s, ended_encounter=ended.ended_encounter)
    _keep_evicted(kept)
    record = StayEnded(
        patient_id=event.patient_id,
        encounter=ended.ended_encounter,
        ward=ward,
        ended_at=event.observed_at,
        through=datetime.fromtimestamp(ended.ended_s, tz=UTC),
        event_id=event.event_id,
        ended_by=ended_by,
        unscored_event_ids=list(unscored or []),
        source=event.source,
        resolved_alert=resolved[0].alert_id if resolved else None,
        hours=stay_hours(window),
        at=now,
    )
    return Discharge(ended, resolved, record, HeldStay(kept, carry))


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
        ended_by=None if discharge.code == DISCHARGE else discharge.code,  # none: a discharge (``ENDED_BY``)
    )


def next_stay(window: PatientWindow) -> PatientWindow:
    """A fresh window for the next stay, keeping the stream position (redeliveries are still told
    from new messages), the newest ward (the new stay's events usually name theirs) and the end of
    the stay before (its late events are still refused, never applied to this stay)."""
    return PatientWindow(position=window.position, ward=window.ward, after_s=window.ended_s)


def stay_hours(window: PatientWindow) -> int | None:
    """The hours of the stay the window holds (its newest hour index + 1), None before any row."""
    return window.last_hour + 1 if window.anchor_s is not None and window.last_hour >= 0 else None


def holdable_carry(window: PatientWindow, carry: StayCarry | None, anchor_before: int | None) -> StayCarry | None:
    """The carry to hold for ``window`` (whose rows that left the window in this batch are held with
    it, ``_keep_evicted``) once the batch's ``changed_from`` is gone: None when the batch moved hour 0
    (a resumed stay is then scored from its window, as after a re-anchoring); without its closed
    state (``h_closed``) when an hour it had closed changed, so that the recurrent model steps again
    from ``h_boundary``, exact (``stepping._replays``); else as it is."""
    if carry is None or anchor_before != window.anchor_s:
        return None
    if window.changed_from is not None and window.changed_from <= carry.closed:
        return replace(carry, h_closed=None)
    return carry


def keep_late(window: PatientWindow, held: HeldStay | None, event: PatientEvent) -> HeldStay | None:
    """A late event of the stay a discharge ended (``stay_of``: ``ended``), applied to that stay as
    held, so that a cancel of the discharge resumes it with the result (a lactate drawn before the
    discharge and resulted after it); None when the held stay is not the one it ended, or the event
    changes nothing there. It is still dead-lettered ``stay_ended``: the patient has left until a
    cancel says otherwise."""
    end = last_end(window)
    if event.kind == "encounter" or held is None or end is None or held.window.ended_s != end:
        return None  # a discharge sent again is refused, never a result
    before = held.window.after_s  # the stay before the held one: its late results are not the held stay's
    if before is not None and int(event.observed_at.timestamp()) <= before:
        return None
    kept = copy.deepcopy(held.window)  # a held window carries no batch state (``_keep_evicted``)
    try:
        if not kept.apply(event):
            return None
    except LateEvent:
        return None
    carry = holdable_carry(kept, held.carry, held.window.anchor_s)
    _keep_evicted(kept)
    return HeldStay(kept, carry)


def _keep_evicted(window: PatientWindow) -> None:
    """A held window keeps the rows that left it in its batch (the carry has not folded them: a
    resume hands them to the stepping core, ``resume``), and forgets the batch's transient state."""
    window.rows.update(window.evicted)
    window.evicted, window.changed_from = {}, None


@dataclass(frozen=True)
class Resumed:
    """What a cancelled discharge gives back: the stay's window (the next stay's hours folded in),
    its carry, and the record published."""

    window: PatientWindow
    carry: StayCarry | None
    record: StayResumed


def resume(
    window: PatientWindow, held: HeldStay | None, event: PatientEvent, now: datetime, discharged_s: int | None = None
) -> Resumed | Rejected:
    """Cancel the discharge that ended ``held`` (``event``: a ``cancel_discharge``). ``window`` is the
    patient's window now: the tombstone that discharge left, or the next stay begun after it (its
    events fold back into the resumed stay). Anything else has no ended stay to resume: after a
    cancel (nothing held, the open stay spans the discharge's time ``discharged_s``) a second cancel
    is a duplicate."""
    refused = _cancel_refusal(window, held, event, discharged_s)
    if refused is not None:
        return refused
    assert held is not None and held.window.ended_s is not None
    end, ended_encounter = held.window.ended_s, held.window.ended_encounter
    restored = replace(
        copy.deepcopy(held.window), ended_s=None, ended_encounter=None, ended_by=None, position=window.position
    )
    # rows held beyond the window (they left it in the discharge's batch): to the stepping core, which
    # folds them into the carry's aggregates as it would have
    restored.evicted = {
        h: restored.rows.pop(h) for h in sorted(restored.rows) if h <= restored.last_hour - WINDOW_HOURS
    }
    folded = 0
    if window.ended_s is None:  # the next stay began: its hours are this stay's
        folded = fold(restored, window)
        restored.ward = window.ward or restored.ward
        restored.encounter = window.encounter or restored.encounter
    restored.ward = event.ward or restored.ward
    record = StayResumed(
        patient_id=event.patient_id,
        encounter=restored.encounter or ended_encounter,
        ward=restored.ward,
        cancelled_at=event.observed_at,
        cancelled_end=datetime.fromtimestamp(end, tz=UTC),
        event_id=event.event_id,
        cancelled_by=CANCEL_TRANSFER if event.code == CANCEL_TRANSFER else CANCEL_DISCHARGE,
        source=event.source,
        hours=stay_hours(restored),
        folded_hours=folded,
        at=now,
    )
    return Resumed(restored, held.carry, record)


def _cancel_refusal(
    window: PatientWindow, held: HeldStay | None, event: PatientEvent, discharged_s: int | None
) -> Rejected | None:
    """Why ``event`` cannot cancel the discharge that ended ``held`` (``resume``), None when it can."""
    end = held.window.ended_s if held is not None else None
    code = event.code
    if held is None or end is None:
        if discharged_s is not None and resumed_over(window, discharged_s):
            return Rejected("duplicate", f"{code}: the end was cancelled already: the stay goes on")
        if code == CANCEL_TRANSFER:  # the transfer it cancels ended no stay (between ICUs, never in one)
            return Rejected(NO_OPEN_STAY, f"{code}: Vigil holds no stay that the cancelled transfer ended")
        return Rejected("unknown_stay", f"{code}: Vigil holds no ended stay of this patient to resume")
    if window.ended_s is not None and window.ended_s != end or window.ended_s is None and window.after_s != end:
        return Rejected("unknown_stay", f"{code}: the patient's last end is not the one Vigil holds")
    if discharged_s is not None and int(event.observed_at.timestamp()) < discharged_s:
        return Rejected("stay_ended", f"{code}: before the end Vigil holds ({_utc(discharged_s)})")
    ended_encounter = held.window.ended_encounter
    if event.encounter and ended_encounter and event.encounter != ended_encounter:
        return Rejected("other_encounter", f"{code}: names another encounter than the end")
    if window.ended_s is None and window.encounter and ended_encounter and window.encounter != ended_encounter:
        # the patient was admitted again under another visit: not a discharge entered in error
        return Rejected("other_encounter", f"{code}: the next stay's events name another encounter")
    return None


def resumed_over(window: PatientWindow, discharged_s: int) -> bool:
    """Whether the open stay ``window`` holds spans the discharge at ``discharged_s``: it began before
    it (hour 0, ``anchor_s``: kept when its first rows leave the 48-hour window, as a resumed stay
    running on for days does) and is not a stay begun after it (``after_s``, the end before this
    stay, is then at or after the discharge). Then that discharge was cancelled already."""
    if window.ended_s is not None or window.anchor_s is None or window.anchor_s > discharged_s:
        return False
    return window.after_s is None or window.after_s < discharged_s


def fold(into: PatientWindow, later: PatientWindow) -> int:
    """Apply what ``later`` (a window begun after ``into``'s last observation) holds to ``into`` at the
    times it was observed, as if its events had come to ``into``; returns the hours of ``later`` that
    held measurements. What left ``later``'s window before (a next stay longer than 48 hours) is not
    there to fold."""
    if later.anchor_s is None:
        return 0
    base = later.anchor_s
    events = [(base + h * 3600 + s, DYNAMIC_CODES[i], v) for h, row in later.rows.items() for i, (v, s) in row.items()]
    events += [(base + h * 3600, code, v) for code, (v, h) in later.static.items()]
    events += [(ts, code, v) for code, ts, v in later.treatments]
    for ts, code, value in sorted(events):
        try:
            into.apply(_recorded(code, ts, value))
        except LateEvent:
            continue  # older than the window it folds into: as the stream refuses it (``LateEvent``)
    return len(later.rows)


def _recorded(code: str, ts: int, value: float) -> PatientEvent:
    """A window's cell as the event that put it there (only what ``PatientWindow.apply`` reads)."""
    return PatientEvent.model_construct(
        kind=CATALOGUE[code][0], code=code, observed_at=datetime.fromtimestamp(ts, tz=UTC), value=value
    )
