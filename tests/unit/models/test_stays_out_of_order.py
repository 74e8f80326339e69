"""A stay's ends met out of the order a unit lives them (models.stays): a ward patient's lab after a
transfer out, a discharge delayed past the readmission's first events, a cancel sent again days
after the stay it resumed went on; and the window blob that keeps what ended a stay. Pure."""

from __future__ import annotations

import struct
from datetime import timedelta

import pytest

from tests.unit.models.test_stay_resume import NOW, cancels, resumed
from tests.unit.models.test_stays import T0, leaves, stay, vital
from vigil.models.alerting import PatientAlertState
from vigil.models.stays import (
    READMISSION_GAP_S,
    READMISSION_MIN_OBSERVATIONS,
    READMISSION_MIN_SPAN_S,
    discharge,
    end_stay,
    next_stay,
    releases_held,
    resume,
    stay_encounter,
    stay_of,
    stay_rejection,
)
from vigil.models.window import WINDOW_HOURS, PatientWindow
from vigil.schemas.events import PatientEvent


def lab(hours: float, code: str = "Lactate", value: float = 4.1) -> PatientEvent:
    """A result from the LIS, as the codecs make it: a ``lab``, naming no ward when its ORU has no PV1."""
    return vital(hours, code=code, value=value).model_copy(update={"kind": "lab"})


def moved_out(hours: float) -> PatientEvent:
    """ADT^A02 MICU -> 4WEST: the unit left is the event's ward."""
    return leaves(hours, ward="MICU", code="transfer_out")


def on_the_ward(window: PatientWindow) -> PatientWindow:
    """The tombstone a transfer out leaves, as the next batch reads it back from Redis."""
    end = discharge(window, PatientAlertState(patient_id="p1"), moved_out(10), NOW)
    return PatientWindow.from_bytes(end.window.to_bytes())


# ------------------------------------------------------------ a ward's lab after a transfer out


def test_a_result_naming_no_ward_after_a_transfer_out_opens_no_icu_stay() -> None:
    """A LIS lactate (an ORU without PV1) of a patient the ICU moved to a ward opened a new ICU stay
    at ICULOS 1, scored and paging the ICU for a ward patient."""
    tombstone = on_the_ward(stay(10))
    assert tombstone.ended_by == "transfer_out"
    lactate = lab(16)
    assert stay_of(tombstone, lactate) == "none"
    refused = stay_rejection(tombstone, lactate, "none")
    assert refused.reason == "no_open_stay" and "p1" not in refused.detail
    assert refused.detail == (
        "Lactate: names no ward, after a transfer out of the monitored units at 2025-01-01T10:00:00Z "
        "(a stay begins with a vital sign, or a result from a monitored unit)"
    )
    back_in_icu = lactate.model_copy(update={"ward": "MICU"})
    assert stay_of(tombstone, back_in_icu) == "new"  # a monitored unit's result: the next stay
    assert stay_of(tombstone, vital(9.5)) == "ended"  # a late result of the stay: as before


@pytest.mark.parametrize("hours", [30, 60, 24 * 6, 24 * 30])
def test_a_vital_sign_naming_no_ward_after_a_transfer_out_begins_the_next_stay(hours: int) -> None:
    """Back in the ICU (the ADT^A02 ward -> ICU is not read: ``adt_transfer``), a patient whose monitors'
    gateway names no ward was refused ``no_open_stay`` at every vital sign, never scored again. A ward's
    own vital signs name the ward and are not scored (``unmonitored_unit``): one naming none is the
    monitored units'."""
    tombstone = on_the_ward(stay(10))
    assert stay_of(tombstone, vital(hours)) == "new"
    assert next_stay(tombstone).ended_by is None  # the next stay: no longer the ward's
    assert stay_of(tombstone, lab(hours)) == "none"  # the LIS's lab without PV1: still the ward's


def test_a_hospital_discharge_after_a_transfer_out_makes_the_tombstone_a_discharges() -> None:
    """The transfer stayed on the tombstone after the ward's discharge let go of the held stay: every
    later result naming no ward was the ward patient's, ``no_open_stay``, after the patient had left."""
    going = stay(10)
    out = discharge(going, PatientAlertState(patient_id="p1"), moved_out(10), NOW)
    tombstone = PatientWindow.from_bytes(out.window.to_bytes())
    assert stay_of(tombstone, lab(20)) == "none"  # on the ward
    ward_discharge = leaves(74, ward="4WEST")
    of = stay_of(tombstone, ward_discharge)
    assert of == "none" and releases_held(tombstone, out.held, ward_discharge, of)
    assert tombstone.ended_by is None  # as the scoring step writes it with the release
    written = tombstone.to_bytes()
    assert written[0] == 4 and PatientWindow.from_bytes(written).ended_by is None  # a discharge's blob
    assert stay_of(PatientWindow.from_bytes(written), lab(80)) == "new"  # admitted again: the next stay
    # a copy of the transfer (not a discharge) or nothing held lets go of nothing, and keeps the ward
    for event, held in ((moved_out(10), out.held), (ward_discharge, None)):
        kept = PatientWindow.from_bytes(out.window.to_bytes())
        assert not releases_held(kept, held, event, stay_of(kept, event))
        assert kept.ended_by == "transfer_out"


def test_after_a_discharge_or_a_cancelled_admission_a_result_naming_no_ward_is_the_next_stay() -> None:
    """Only a transfer out leaves the patient on a ward Vigil is not told of: a patient discharged in
    error whose monitors go on sending, or admitted again, is scored at once, as before."""
    for end in (leaves(10), leaves(10, code="cancel_admit")):
        tombstone = PatientWindow.from_bytes(end_stay(stay(10), end).to_bytes())
        assert stay_of(tombstone, vital(16)) == "new", end.code


def test_a_cancelled_transfer_gives_the_stay_back_without_what_ended_it() -> None:
    going = stay(10)
    end = discharge(going, PatientAlertState(patient_id="p1"), moved_out(10), NOW)
    back = resumed(resume(end.window, end.held, cancels(11).model_copy(update={"code": "cancel_transfer"}), NOW))
    assert back.window.ended_by is None and back.window.ended_s is None
    assert stay_of(back.window, vital(11.5)) == "current"
    assert next_stay(end.window).ended_by is None  # a stay begun in a monitored unit goes on as any other


# ------------------------------------------------------------ the window blob keeps what ended a stay


def test_what_ended_a_stay_is_kept_in_the_blob_and_a_discharges_end_is_what_older_workers_read() -> None:
    tombstone = end_stay(stay(3), moved_out(3.5))
    blob = tombstone.to_bytes()
    assert blob[0] == 6 and PatientWindow.from_bytes(blob) == tombstone
    plain = end_stay(stay(3), leaves(3.5))
    assert plain.ended_by is None and plain.to_bytes()[0] == 4  # a discharge: the release before reads it
    # version 6 with the rows a failed batch kept (``unfolded``): both read back
    w = stay(WINDOW_HOURS + 3)
    w.ended_by = "transfer_out"
    w.keep_unfolded(0)
    assert w.unfolded
    back = PatientWindow.from_bytes(w.to_bytes())
    assert back.ended_by == "transfer_out" and back.evicted == w.unfolded and back.rows == w.rows


def test_older_blobs_still_load_and_a_newer_one_is_refused() -> None:
    tombstone = end_stay(stay(3), moved_out(3.5))
    v6 = tombstone.to_bytes()
    v5 = b"\x05" + v6[1 : -len(b"\x0ctransfer_out")]  # a version-5 blob: no cause of the end
    back = PatientWindow.from_bytes(v5)
    assert back.ended_s == tombstone.ended_s and back.ended_by is None
    with pytest.raises(ValueError, match="unknown window blob version"):
        PatientWindow.from_bytes(bytes([PatientWindow._VERSION + 1]) + v6[1:])
    with pytest.raises(struct.error):
        PatientWindow.from_bytes(v6[:-3])  # cut inside the end's cause


# ------------------------------------------------------------ a discharge delayed past a readmission


def readmitted(encounters: tuple[str | None, str | None] = (None, None)) -> PatientWindow:
    """Stay 1 (hours 0-19) and, admitted again at hour 40, 6 hours of the next stay, applied as the
    scoring step does while the A03 of stay 1 was still in the interface engine."""
    w = PatientWindow(ward="MICU")
    for hours, encounter in [(h + 0.25, encounters[0]) for h in range(20)] + [
        (h + 0.25, encounters[1]) for h in range(40, 46)
    ]:
        event = vital(hours, encounter)
        w.apply(event)
        w.encounter = stay_encounter(w, event)
    return w


def test_a_discharge_delayed_past_the_readmissions_first_events_never_ends_the_readmitted_stay() -> None:
    """Applied, it ended the readmitted patient's stay through the readmission's newest observation:
    the alert resolved, the patient off the ward view, the first hours of the readmission lost."""
    w = readmitted()
    late = leaves(20.5, encounter=None)
    assert stay_of(w, late) == "late"
    refused = stay_rejection(w, late, "late")
    assert refused.reason == "late_discharge" and "p1" not in refused.detail
    assert refused.detail.startswith("discharge: at 2025-01-01T20:30:00Z, before observations of a later stay")
    assert stay_of(w, leaves(20.5, encounter=None, code="transfer_out")) == "late"  # any end
    assert stay_of(w, leaves(46.5, encounter=None)) == "current"  # the readmission's own discharge
    # with visit numbers, the stay's events name the readmission's: another encounter, as before
    assert stay_of(readmitted(("V1", "V2")), leaves(20.5, encounter="V1")) == "other"


def test_a_monitor_that_sent_on_after_the_recorded_discharge_time_still_ends_the_stay() -> None:
    """Stray readings of a monitor still bound to the patient, past a gap of two hours (unplugged,
    then one reading before it was cleared), were taken for a readmission: the genuine discharge was
    refused ``late_discharge``, the stay and its alert stayed open, each stray reading keeping them.
    A few readings are no stay: the discharge ends it, through them (``end_stay``), and a reading
    after that begins the next stay at once if it was one."""
    w = stay(10)  # hourly vital signs to 09:15
    assert stay_of(w, leaves(7.5, encounter=None)) == "current"  # 07:30: two observations after it
    assert end_stay(w, leaves(7.5)).ended_s == int(vital(9.25).observed_at.timestamp())
    assert READMISSION_GAP_S == 2 * 3600
    w.apply(vital(11 + 14 / 60))  # 11:14, a gap a minute short of the rule: the same stay
    assert stay_of(w, leaves(7.5, encounter=None)) == "current"
    w.apply(vital(13 + 14 / 60))  # 13:14, two hours after: a stray reading, no stay
    w.apply(vital(13 + 14 / 60, code="O2Sat", value=91))  # with its saturation
    assert stay_of(w, leaves(7.5, encounter=None)) == "current"
    assert stay_of(w, leaves(11 + 14 / 60, encounter=None)) == "current"  # the gap from the discharge time on
    assert end_stay(w, leaves(7.5)).ended_s == int(vital(13 + 14 / 60).observed_at.timestamp())


def test_a_discharge_followed_by_a_stays_worth_of_observations_past_a_gap_is_late() -> None:
    """What the observations after the gap must hold to be a readmission's: at least
    ``READMISSION_MIN_OBSERVATIONS`` over at least ``READMISSION_MIN_SPAN_S``, without a gap inside."""
    assert (READMISSION_MIN_OBSERVATIONS, READMISSION_MIN_SPAN_S) == (6, 2 * 3600)
    discharged = leaves(9.5, encounter=None)

    def after_gap(*sets: tuple[float, tuple[str, ...]]) -> PatientWindow:
        w = stay(10)  # hourly vital signs to 09:15
        for hours, codes in sets:
            for code in codes:
                w.apply(vital(hours, code=code))
        return w

    vitals = ("HR", "Resp", "O2Sat")
    assert stay_of(after_gap((13, vitals), (14, vitals), (15, vitals)), discharged) == "late"  # 9 over 2 h
    assert stay_of(after_gap((13, vitals), (14.9, vitals)), discharged) == "current"  # 6, 1 h 54 min
    assert stay_of(after_gap((13, vitals), (15, ("HR", "Resp"))), discharged) == "current"  # 5 over 2 h
    # strays days apart are runs of their own, each no stay
    assert stay_of(after_gap((13, vitals), (16, vitals), (19, vitals)), discharged) == "current"
    # a minute-rate monitor counts once per variable and hour: 40 minutes of it are no stay
    assert stay_of(after_gap(*[(13 + m / 60, vitals) for m in range(40)]), discharged) == "current"


def test_a_discharge_of_the_visit_the_stay_names_is_never_a_readmissions() -> None:
    """One visit is no readmission: its discharge ends the stay whatever its observations after it
    (the reviewer's case: recorded 09:30, entered at 12:40, the monitor still bound until then)."""
    w = readmitted(("V1", "V1"))
    assert stay_of(w, leaves(20.5, encounter="V1")) == "current"
    assert stay_of(w, leaves(20.5, encounter=None)) == "late"  # naming none: the readmission's may follow
    assert stay_of(readmitted(), leaves(20.5, encounter="V1")) == "late"  # the stay's events name none


# ------------------------------------------------------------ a cancel sent again days later


def test_a_cancel_sent_again_after_the_resumed_stay_ran_past_its_window_is_a_duplicate() -> None:
    """The first observation still in the sliding window was compared with the discharge: once the
    resumed stay's first rows had left it, the engine's resend was ``unknown_stay``, which sites
    alert on."""
    going = stay(10)
    end = discharge(going, PatientAlertState(patient_id="p1"), leaves(10), NOW)
    discharged = int(leaves(10).observed_at.timestamp())
    back = resumed(resume(end.window, end.held, cancels(11), NOW, discharged))
    w = back.window
    for h in range(11, 80):
        w.apply(vital(h + 0.25))
    assert w.observed_span()[0] > discharged  # type: ignore[index]  # hour 0 left the window
    again = resume(w, None, cancels(11), NOW, discharged)
    assert again.reason == "duplicate"  # type: ignore[union-attr]
    # the cancelled A03 itself sent again then: a duplicate, not an earlier stay's (stay_ended)
    assert stay_of(w, leaves(10), discharged) == "cancelled"


def test_a_cancel_after_a_next_stay_begun_in_the_discharges_hour_is_not_a_duplicate() -> None:
    """Hour 0 is the start of the first event's hour: a next stay begun 20 minutes after a discharge
    at 10:20 has its hour 0 before it. With nothing held, a cancel then is ``unknown_stay``."""
    at = leaves(10 + 1 / 3)
    tombstone = end_stay(stay(10), at)
    following = next_stay(tombstone)
    following.apply(vital(10 + 2 / 3))
    assert following.anchor_s is not None and following.anchor_s < int(at.observed_at.timestamp())
    refused = resume(following, None, cancels(11), NOW, int(at.observed_at.timestamp()))
    assert refused.reason == "unknown_stay"  # type: ignore[union-attr]
    assert T0 + timedelta(hours=10) == following.hour_start(0)
