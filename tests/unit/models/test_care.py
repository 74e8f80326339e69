"""From the stream to the care score's inputs (models/care.py): what the rules compare, the care clock's
time zeros and the state at them, and which care in the window counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.agents.test_treat import T0, at, event, score, vitals, well
from vigil.models.care import (
    CARE_LOOKBACK,
    EPISODE_GAP,
    CareClock,
    advance_clock,
    care_categories,
    care_inputs,
    clock_inputs,
    remember_care,
)
from vigil.models.treatment import score_patient_care
from vigil.models.window import PatientWindow


def _state(**kw):
    base = {
        "map_mmhg": 70.0,
        "sbp_mmhg": 110.0,
        "lactate_mmol_l": 1.5,
        "weight_kg": 70.0,
        "news2_total": 3,
        "news2_single_parameter_3": False,
        "suspected_sepsis": True,
        "time_zero": datetime(2025, 1, 1, tzinfo=UTC),
    }
    base.update(kw)
    return base


def test_categories_ignore_changes_that_cannot_move_the_care_score() -> None:
    assert care_categories(_state(map_mmhg=72.0, news2_total=4)) == care_categories(_state())


def test_categories_follow_guideline_thresholds() -> None:
    assert care_categories(_state(map_mmhg=64.0)) != care_categories(_state())  # MAP < 65: hypotension
    assert care_categories(_state(sbp_mmhg=89.0, map_mmhg=None)) != care_categories(_state(map_mmhg=None))
    assert care_categories(_state(news2_total=5)) != care_categories(_state())  # NEWS2 band change
    assert care_categories(_state(news2_single_parameter_3=True)) != care_categories(_state())


# --- the care clock and its inputs (models/care.py) ------------------------------------------------


def _graded(window: PatientWindow, now_min: float, **kw) -> dict[str, tuple[str, str]]:
    state, items = care_inputs(score(now_min, hour=window.last_hour, **kw), window, T0)
    result = score_patient_care(state, items, now=at(now_min), suggest=False)
    return {i.name: (i.status, i.detail) for i in result.items}


def test_the_initial_lactate_is_one_drawn_within_an_hour_of_time_zero() -> None:
    # defect 6: a lactate 30 h before time zero (1.1) hid the lactate 6.0 at time zero
    w = PatientWindow()
    w.apply(event("Lactate", -30 * 60, 1.1))
    vitals(w, 0, sbp=118)
    w.apply(event("Lactate", 10, 6.0))
    state, _ = care_inputs(score(200, hour=w.last_hour, sbp=118, map_mmhg=78), w, T0)
    assert state["lactate_mmol_l"] == 6.0
    graded = _graded(w, 200, sbp=118, map_mmhg=78)
    assert graded["crystalloid_30ml_kg"][0] == "missing"  # lactate >= 4: hypoperfusion (SSC 2018)
    assert graded["lactate_remeasured"][0] == "pending"


def test_a_lactate_first_drawn_hours_after_time_zero_is_late() -> None:
    # defect 6: the first lactate anywhere was "the initial lactate": drawn at T+4 h, graded "met"
    w = PatientWindow()
    vitals(w, 0)
    w.apply(event("Lactate", 240, 3.0))
    state, _ = care_inputs(score(245, hour=w.last_hour), w, T0)
    assert state["lactate_mmol_l"] is None
    assert _graded(w, 245)["lactate_measured"] == ("late", "measured at T+4 h, after T+1 h")


def test_care_long_before_time_zero_is_not_this_episodes() -> None:
    # defect 11: antibiotics of the day before were "met at T-1 d 6 h" and made the cultures "late"
    w = PatientWindow()
    vitals(w, 0)
    w.apply(event("antibiotic", -30 * 60, 1))
    w.apply(event("blood_culture", 10, 1))
    w.apply(event("antibiotic", 30, 1))
    graded = _graded(w, 120)
    assert graded["antibiotics"][0] == "met" and "T+30 min" in graded["antibiotics"][1]
    assert graded["blood_cultures_before_antibiotics"][0] == "met"
    # what the ED gave just before Vigil's first score still counts (SSC 2021: "immediately")
    w.apply(event("antibiotic", -CARE_LOOKBACK.total_seconds() / 60 + 60, 1))
    assert "T-5 h" in _graded(w, 120)["antibiotics"][1]


@pytest.mark.parametrize(
    ("after_fluids", "pressor", "expected"),
    [
        (None, None, None),  # no reading after the fluid: time zero's pressure read as persisting
        (58.0, None, True),  # hypotensive during resuscitation
        (72.0, None, False),  # at target after fluids, no vasopressor: the item does not apply
        (72.0, 50, None),  # at target on a vasopressor: not restored by the fluid
    ],
)
def test_hypotension_after_fluids_is_read_from_the_pressures_after_the_fluid(
    after_fluids: float | None, pressor: float | None, expected: bool | None
) -> None:
    # defect 5: the later values are read only where a rule asks about later (SSC 2018: "hypotensive
    # during or after fluid resuscitation")
    w = PatientWindow()
    vitals(w, 0, sbp=82)
    w.apply(event("MAP", 0, 58))
    w.apply(event("crystalloid_ml", 20, 2100))
    if pressor is not None:
        w.apply(event("vasopressor", pressor, 0.1))
    if after_fluids is not None:
        w.apply(event("MAP", 70, after_fluids))
    state, _ = care_inputs(score(90, hour=w.last_hour, sbp=82, map_mmhg=58), w, T0)
    assert state["hypotension_after_fluids"] is expected
    assert state["map_mmhg"] == 58  # time zero's, whatever came after


def test_the_clock_keeps_the_state_of_its_time_zeros() -> None:
    # defect 5 and 4: zeros set once, from the score at them
    clock = advance_clock(None, score(0, news2=5, band="medium", qsofa=False, sirs=False, sbp=115, map_mmhg=80))
    assert clock is not None and clock.sepsis is None and clock.news2 is not None and clock.news2.at == T0
    clock = advance_clock(clock, score(60, news2=6, band="medium", sbp=88, map_mmhg=62))
    assert clock is not None and clock.sepsis is not None and clock.sepsis.at == at(60)
    assert clock.sepsis.map_mmhg == 62 and clock.news2.at == T0  # a band no higher: the trigger stands
    clock = advance_clock(clock, well(120))
    assert clock is not None and clock.sepsis is not None and clock.sepsis.map_mmhg == 62
    assert clock.care_time_zero() == at(60)
    state, _ = clock_inputs(clock, PatientWindow(), at(120))
    assert state["suspected_sepsis"] and state["news2_at_min"] == -60 and state["news2_band"] == "medium"


def test_a_rise_to_a_higher_news2_band_is_the_trigger_the_response_answers() -> None:
    clock = advance_clock(None, score(0, news2=5, band="medium"))
    clock = advance_clock(clock, score(120, news2=8, band="high"))
    assert clock is not None and clock.news2 is not None and clock.news2.at == at(120)
    assert clock.news2.news2_band == "high" and clock.sepsis is not None and clock.sepsis.at == T0


def test_an_episode_ends_after_a_day_without_an_at_risk_score() -> None:
    # defect 4: the clock never restarted within a stay
    clock = advance_clock(None, score(0))
    again = advance_clock(clock, score(5 * 60))
    assert again is not None and again.time_zero == T0  # hours, not a day: the same episode
    gap = EPISODE_GAP.total_seconds() / 60 + 60
    assert advance_clock(again, well(gap)) == again  # not at risk: nothing starts
    later = advance_clock(again, score(5 * 60 + gap))
    assert later is not None and later.time_zero == at(5 * 60 + gap) and later.sepsis is not None
    assert later.sepsis.at == later.time_zero


def test_a_late_score_from_before_the_episode_moves_no_time_zero() -> None:
    clock = advance_clock(None, score(60, news2=5, band="medium", qsofa=False, sirs=False))
    assert advance_clock(clock, score(-30)) == clock


def test_the_clock_is_judged_never_before_its_last_judgement() -> None:
    clock = CareClock(time_zero=T0, as_of=at(90))
    assert clock.judged_at(at(-15)) == at(90) and clock.judged_at(at(120)) == at(120)
    assert CareClock(time_zero=T0).judged_at(at(-15)) == T0  # before: as of a late result's time


def test_follows_until_every_deadline_has_passed() -> None:
    clock = advance_clock(None, score(0))
    assert clock is not None and clock.follows(at(300)) and not clock.follows(at(7 * 60))
    assert clock.time_zero + timedelta(hours=6) == at(360)


def test_a_clock_with_every_field_reads_back_as_written() -> None:
    w = PatientWindow()
    vitals(w, 0)
    w.apply(event("antibiotic", 20, 1))
    w.apply(event("Lactate", 10, 4.5))
    w.apply(event("weight_kg", 0, 70.3))
    clock = advance_clock(None, score(0))
    assert clock is not None
    clock = remember_care(clock.model_copy(update={"as_of": at(30), "digest": "d", "inputs": "i"}), w)
    assert sorted(code for code, _, _ in clock.kept) == ["Lactate", "antibiotic", "weight_kg"]
    assert CareClock.model_validate_json(clock.model_dump_json()) == clock
    assert remember_care(clock, PatientWindow()) == clock  # the window emptied: the care is kept


# --- the NEWS2 response, hours before sepsis time zero ----------------------------------------------


def _news2_then_sepsis(w: PatientWindow, news2_min: float) -> CareClock:
    """A NEWS2 5 (no sepsis) at ``news2_min``, sepsis recognised at T0: one episode, two time zeros."""
    clock = None
    for s in (
        score(news2_min, news2=5, band="medium", qsofa=False, sirs=False, sbp=120, map_mmhg=80),
        score(0, news2=5, band="medium", sbp=120, map_mmhg=80, hour=w.last_hour),
    ):
        clock = advance_clock(clock, s)
    assert clock is not None
    return clock


def _news2_graded(clock: CareClock, w: PatientWindow, now_min: float) -> dict[str, tuple[str, str]]:
    state, items = clock_inputs(clock, w, at(now_min))
    result = score_patient_care(state, items, now=at(now_min), suggest=False)
    return {i.name: (i.status, i.detail) for i in result.items}


def test_the_urgent_review_hours_before_sepsis_time_zero_is_its_news2_response() -> None:
    # docs/treatment.md's example: NEWS2 5 at 10:00, sepsis at 16:30 (T0), urgent review at 10:20;
    # the look-back ran from 16:30 (to 10:30), and the review was graded "missing"
    w = PatientWindow()
    for m in range(-390, 91, 60):
        vitals(w, m, sbp=120)
    w.apply(event("clinician_review", -370, 1.0))
    clock = remember_care(_news2_then_sepsis(w, -390), w)
    assert [at_ for code, at_, _ in clock.kept if code == "clinician_review"] == [at(-370)]
    assert _news2_graded(clock, w, 90)["news2_escalation"] == (
        "met",
        "NEWS2 medium: urgent review by a clinician at T-6 h 10 min",
    )
    # kept: still its response once the window has lost it
    assert _news2_graded(clock, PatientWindow(), 90)["news2_escalation"][0] == "met"


def test_the_observation_sets_since_a_news2_score_9_h_before_sepsis_all_count() -> None:
    # hourly sets from a NEWS2 5 at T-9 h: the ones before T-6 h were dropped, read as a 180-min gap
    w = PatientWindow()
    for h in range(-9, 2):
        vitals(w, h * 60 + 1, sbp=120)
    clock = remember_care(_news2_then_sepsis(w, -9 * 60), w)
    assert _news2_graded(clock, w, 90)["news2_observation_frequency"] == (
        "met",
        "NEWS2 medium: every 60 min; largest gap 60 min",
    )


def test_reviews_before_the_news2_score_take_no_place_of_its_response() -> None:
    # the clock keeps four reviews: four ward rounds in the look-back before the score filled them, and
    # the urgent review that answered it was lost with the window
    w = PatientWindow()
    vitals(w, 0, sbp=120)
    for m in (-300, -240, -180, -120):
        w.apply(event("clinician_review", m, 1.0))
    w.apply(event("clinician_review", 20, 1.0))
    clock = advance_clock(None, score(0, news2=5, band="medium", qsofa=False, sirs=False, sbp=120, map_mmhg=80))
    assert clock is not None
    clock = remember_care(clock, w)
    assert [at_ for code, at_, _ in clock.kept if code == "clinician_review"] == [at(20)]
    assert _news2_graded(clock, PatientWindow(), 90)["news2_escalation"][0] == "met"


# --- the vasopressor's hour, from hypotension after fluids -------------------------------------------


def test_the_vasopressor_is_due_an_hour_after_the_map_fell_after_fluids() -> None:
    # MAP 72 at time zero, lactate 5, 30 mL/kg at T+20, MAP 58 at T+150, noradrenaline at T+160: graded
    # "late" against T+1 h (SSC 2018: vasopressors "if hypotensive during or after fluid resuscitation")
    w = PatientWindow()
    w.apply(event("weight_kg", -10, 70.0))
    vitals(w, 0, sbp=110)
    w.apply(event("MAP", 0, 72.0))
    w.apply(event("Lactate", 5, 5.0))
    w.apply(event("crystalloid_ml", 20, 2100.0))
    w.apply(event("MAP", 62, 70.0))
    w.apply(event("MAP", 150, 58.0))
    state, _ = care_inputs(score(155, hour=w.last_hour, sbp=110, map_mmhg=72), w, T0)
    assert state["hypotension_after_fluids"] is True and state["hypotension_onset_min"] == 150
    assert _graded(w, 155, sbp=110, map_mmhg=72)["vasopressor_map_65"][0] == "pending"
    w.apply(event("vasopressor", 160, 0.1))
    assert _graded(w, 170, sbp=110, map_mmhg=72)["vasopressor_map_65"] == (
        "met",
        "started at T+2 h 40 min, titrate to MAP >= 65 mmHg",
    )
    assert _graded(w, 230, sbp=110, map_mmhg=72)["vasopressor_map_65"][0] == "met"


def test_no_fall_after_fluids_carries_no_onset() -> None:
    w = PatientWindow()
    vitals(w, 0, sbp=110)
    w.apply(event("MAP", 0, 72.0))
    w.apply(event("crystalloid_ml", 20, 2100.0))
    w.apply(event("MAP", 90, 70.0))
    state, _ = care_inputs(score(120, hour=w.last_hour, sbp=110, map_mmhg=72), w, T0)
    assert state["hypotension_onset_min"] is None and state["hypotension_after_fluids"] is False
    assert care_categories({**_state(), "hypotension_onset_min": 150.0}) != care_categories(_state())


def _fall_at_t150(w: PatientWindow) -> None:
    """MAP 72 at time zero, lactate 5, MAP 58 at T+150 after the fluids, noradrenaline at T+160."""
    vitals(w, 0, sbp=110)
    w.apply(event("MAP", 0, 72.0))
    w.apply(event("Lactate", 5, 5.0))
    w.apply(event("MAP", 62, 70.0))
    w.apply(event("MAP", 150, 58.0))
    w.apply(event("vasopressor", 160, 0.1))


@pytest.mark.parametrize(
    ("ed_bolus_min", "ed_dip_min"),
    [(-30, -20), (-90, -80)],  # the ED began the bolus before recognition; the MAP dipped during it
)
def test_a_dip_during_an_ed_bolus_before_time_zero_is_not_the_fall_after_fluids(
    ed_bolus_min: int, ed_dip_min: int
) -> None:
    # at target at time zero: the dip before it became the onset (T-20), the vasopressor fell due at
    # T+60 again, and noradrenaline at T+160 for the fall at T+150 was graded late
    w = PatientWindow()
    w.apply(event("weight_kg", -100, 70.0))
    w.apply(event("crystalloid_ml", ed_bolus_min, 1000.0))
    w.apply(event("MAP", ed_dip_min, 62.0))
    w.apply(event("crystalloid_ml", 20, 1100.0))
    _fall_at_t150(w)
    state, _ = care_inputs(score(230, hour=w.last_hour, sbp=110, map_mmhg=72), w, T0)
    assert state["hypotension_after_fluids"] is True and state["hypotension_onset_min"] == 150
    assert _graded(w, 230, sbp=110, map_mmhg=72)["vasopressor_map_65"] == (
        "met",
        "started at T+2 h 40 min, titrate to MAP >= 65 mmHg",
    )


def test_below_the_target_at_time_zero_the_fall_after_an_ed_bolus_still_counts() -> None:
    # only a patient at the target at time zero is read from time zero: in shock at T, the dip during
    # the ED's bolus is hypotension during fluids, as before
    w = PatientWindow()
    w.apply(event("crystalloid_ml", -30, 1000.0))
    w.apply(event("MAP", -20, 60.0))
    vitals(w, 0, sbp=85)
    w.apply(event("MAP", 0, 60.0))
    state, _ = care_inputs(score(60, hour=w.last_hour, sbp=85, map_mmhg=60), w, T0)
    assert state["hypotension_after_fluids"] is True and state["hypotension_onset_min"] == -20


def test_at_target_at_time_zero_and_after_it_the_ed_dip_leaves_no_hypotension_after_fluids() -> None:
    w = PatientWindow()
    w.apply(event("crystalloid_ml", -30, 1000.0))
    w.apply(event("MAP", -20, 62.0))
    vitals(w, 0, sbp=110)
    w.apply(event("MAP", 0, 72.0))
    w.apply(event("MAP", 90, 70.0))
    state, _ = care_inputs(score(120, hour=w.last_hour, sbp=110, map_mmhg=72), w, T0)
    assert state["hypotension_onset_min"] is None and state["hypotension_after_fluids"] is False
    assert _graded(w, 120, sbp=110, map_mmhg=72)["vasopressor_map_65"][0] == "not_applicable"
