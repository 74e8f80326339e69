"""Treatment scoring and plan optimization (pure functions, no I/O).

Scores the care given or proposed for one patient against the guidelines that apply to their state,
and suggests the smallest set of changes that raises the score most. Rules, weights and grading are
documented in ``docs/treatment.md``; each rule below cites its source.

Sources:
- SSC 2021: Evans L, Rhodes A, Alhazzani W, et al. Surviving Sepsis Campaign: international
  guidelines for management of sepsis and septic shock 2021. Crit Care Med 2021;49:e1063-e1143.
- SSC hour-1 bundle: Levy MM, Evans LE, Rhodes A. The Surviving Sepsis Campaign bundle: 2018
  update. Crit Care Med 2018;46:997-1000.
- RCP NEWS2 2017: Royal College of Physicians. National Early Warning Score (NEWS) 2. London: RCP,
  2017 (chart 3: clinical response; table "NEWS thresholds and triggers").

Time is minutes after *time zero* (sepsis recognition, or the NEWS2 observation set that triggered).
Two modes share every rule:
- **plan** (``as_of_min=None``): the plan is judged as complete up to its horizon; nothing is pending.
- **streaming** (``as_of_min`` = now): care so far; an item not yet done whose deadline is still
  ahead is ``pending`` and left out of the score, so a patient recognized five minutes ago is not
  scored as failing the one-hour bundle.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from vigil.models.early_warning import news2_band
from vigil.schemas.scores import News2Band
from vigil.schemas.treatment import (
    CareItemResult,
    ChangeKind,
    Dose,
    ItemStatus,
    PatientState,
    PlanSuggestion,
    TreatmentItem,
    TreatmentPlan,
    TreatmentScore,
)

__all__ = [
    "WEIGHTS",
    "SOURCES",
    "evaluate_plan",
    "score_value",
    "score_plan",
    "suggest_changes",
    "apply_suggestion",
    "score_patient_care",
    "required_observation_interval_min",
]

SSC_2021 = (
    "Evans L et al. Surviving Sepsis Campaign: international guidelines for management of sepsis "
    "and septic shock 2021. Crit Care Med 2021;49:e1063-e1143"
)
SSC_HOUR1_2018 = (
    "Levy MM, Evans LE, Rhodes A. The Surviving Sepsis Campaign bundle: 2018 update. Crit Care Med 2018;46:997-1000"
)
RCP_NEWS2_2017 = (
    "Royal College of Physicians. National Early Warning Score (NEWS) 2. London: RCP, 2017 (chart 3, clinical response)"
)

# Points per guideline item before normalization over the items that apply (sum 100). Antibiotic
# timing weighs most: SSC 2021's strongest time-critical recommendation (mortality rises with each
# hour of delay in shock); fluids and vasopressors next (hypoperfusion); diagnostics after.
WEIGHTS: dict[str, float] = {
    "antibiotics": 25.0,
    "crystalloid_30ml_kg": 15.0,
    "vasopressor_map_65": 15.0,
    "blood_cultures_before_antibiotics": 10.0,
    "lactate_measured": 10.0,
    "lactate_remeasured": 5.0,
    "news2_observation_frequency": 10.0,
    "news2_escalation": 10.0,
}

SOURCES: dict[str, str] = {
    "antibiotics": f"{SSC_2021} (recs 20-21: within 1 h for possible shock or probable sepsis; "
    f"within 3 h for possible sepsis without shock); {SSC_HOUR1_2018}",
    "crystalloid_30ml_kg": f"{SSC_2021} (rec 7: at least 30 mL/kg IV crystalloid within the first 3 h "
    f"for sepsis-induced hypoperfusion); {SSC_HOUR1_2018} (hypotension or lactate >= 4 mmol/L)",
    "vasopressor_map_65": f"{SSC_HOUR1_2018} (vasopressors if hypotensive during or after fluids to keep "
    f"MAP >= 65 mmHg); {SSC_2021} (recs 13, 44: initial MAP target 65 mmHg, noradrenaline first line)",
    "blood_cultures_before_antibiotics": f"{SSC_HOUR1_2018} (blood cultures before antibiotics); "
    f"{SSC_2021} (best-practice statement: cultures before antimicrobials if no substantial delay)",
    "lactate_measured": f"{SSC_HOUR1_2018} (measure lactate); {SSC_2021} (rec 5: measure blood lactate)",
    "lactate_remeasured": f"{SSC_HOUR1_2018} (remeasure if initial lactate > 2 mmol/L, within 2-4 h); "
    f"{SSC_2021} (rec 6: guide resuscitation to decrease lactate)",
    "news2_observation_frequency": f"{RCP_NEWS2_2017}: minimum frequency 12-hourly (0), 4-6-hourly "
    "(1-4), hourly (3 in one parameter or 5-6), continuous monitoring (>= 7)",
    "news2_escalation": f"{RCP_NEWS2_2017}: 3 in one parameter or 5-6 urgent review by a clinician "
    "competent in acute illness; >= 7 emergency assessment by a team with critical-care competencies",
}

# Deadlines (minutes after time zero) and Vigil's conventions where a guideline gives no number.
HOUR1_MIN = 60.0  # SSC hour-1 bundle: every element started within 1 h
ANTIBIOTIC_POSSIBLE_SEPSIS_MIN = 180.0  # SSC 2021 rec 21
FLUID_WINDOW_MIN = 180.0  # SSC 2021 rec 7: first 3 h
LACTATE_REMEASURE_MIN = 240.0  # SSC 2018 update: remeasure within 2-4 h
LACTATE_REMEASURE_GAP_MIN = 60.0  # Vigil: a repeat < 1 h after the first cannot show a trend
URGENT_REVIEW_MIN = 60.0  # Vigil: "urgent" (RCP gives no number)
EMERGENCY_REVIEW_MIN = 30.0  # Vigil: "emergency" (RCP gives no number)
CONTINUOUS_MONITORING_MIN = 15.0  # Vigil: a set at least every 15 min counts as continuous
FLUID_ML_PER_KG = 30.0
LATE_CREDIT = 0.5
VERY_LATE_CREDIT = 0.25  # antibiotics more than 3 h after time zero

# Candidate times (minutes after time zero) the optimizer tries for an added or moved item.
CANDIDATE_MIN: tuple[float, ...] = (0.0, 15.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 240.0)

ANTIBIOTIC_LABEL = "broad-spectrum antibiotics"
LABELS: dict[str, str] = {
    "antibiotic": ANTIBIOTIC_LABEL,
    "blood_culture": "blood cultures",
    "lactate_ordered": "lactate measurement",
    "crystalloid_ml": "crystalloid",
    "vasopressor": "vasopressor",
    "oxygen": "oxygen",
    "clinician_review": "clinician review",
    "observation_set": "observation set",
    "weight_kg": "weight",
}


# --- timeline ------------------------------------------------------------------------------------


def _minutes(at: float | datetime, time_zero: datetime | None) -> float:
    if isinstance(at, datetime):
        if time_zero is None:
            raise ValueError("absolute item times need time_zero")
        return (at - time_zero).total_seconds() / 60.0
    return float(at)


@dataclass(frozen=True)
class _Timeline:
    """A plan's items as minutes after time zero, with repeating observation sets expanded."""

    times: dict[str, list[float]]
    fluids_ml: list[tuple[float, float]]
    reviews: list[tuple[float, str | None]]
    weight_kg: float | None
    horizon_min: float


def _timeline(plan: TreatmentPlan, horizon_min: float) -> _Timeline:
    times: dict[str, list[float]] = {}
    fluids: list[tuple[float, float]] = []
    reviews: list[tuple[float, str | None]] = []
    weights: list[tuple[float, float]] = []
    for item in plan.items:
        t = _minutes(item.at, plan.time_zero)
        if item.action == "observation_set" and item.every_min is not None:
            k = 0
            while t + k * item.every_min <= horizon_min + 1e-9 and k < 10_000:
                times.setdefault("observation_set", []).append(t + k * item.every_min)
                k += 1
            continue
        times.setdefault(item.action, []).append(t)
        if item.action == "crystalloid_ml" and item.dose is not None:
            fluids.append((t, item.dose.value))
        elif item.action == "clinician_review":
            reviews.append((t, item.role))
        elif item.action == "weight_kg" and item.dose is not None:
            weights.append((t, item.dose.value))
    for values in times.values():
        values.sort()
    weight = plan.state.weight_kg
    if weight is None and weights:
        weight = max(weights)[1]  # the latest recorded weight
    return _Timeline(times, sorted(fluids), sorted(reviews, key=lambda r: r[0]), weight, horizon_min)


def _first(values: list[float] | None) -> float | None:
    return values[0] if values else None


def _fmt(minutes: float) -> str:
    return f"+{minutes:g} min" if minutes >= 0 else f"{minutes:g} min"


# --- patient state -------------------------------------------------------------------------------


def _hypotensive(state: PatientState) -> bool:
    # SSC 2018 hour-1 bundle / SSC 2021: hypotension = MAP < 65 mmHg (SBP < 90 mmHg where MAP absent)
    return (state.map_mmhg is not None and state.map_mmhg < 65) or (state.sbp_mmhg is not None and state.sbp_mmhg < 90)


def _hypoperfusion(state: PatientState) -> bool:
    # SSC 2018 hour-1 bundle: 30 mL/kg crystalloid "for hypotension or lactate >= 4 mmol/L"
    return _hypotensive(state) or (state.lactate_mmol_l is not None and state.lactate_mmol_l >= 4.0)


def _antibiotic_window_min(state: PatientState) -> float:
    # SSC 2021 recs 20-21: possible septic shock or probable sepsis -> within 1 h; possible sepsis
    # without shock -> within 3 h. Vigil reads hypotension or lactate >= 4 as possible shock.
    if state.sepsis_likelihood == "probable" or _hypoperfusion(state):
        return HOUR1_MIN
    return ANTIBIOTIC_POSSIBLE_SEPSIS_MIN


def _band(state: PatientState) -> News2Band | None:
    if state.news2_band is not None:
        return state.news2_band
    if state.news2_total is None:
        return None
    return news2_band(state.news2_total, state.news2_single_parameter_3)


def required_observation_interval_min(state: PatientState) -> float | None:
    """RCP NEWS2 2017 chart 3 minimum observation frequency, as the longest allowed gap in minutes.

    0 -> 12-hourly; 1-4 -> 4-6-hourly (the 6 h end is the limit); 3 in one parameter or 5-6 ->
    hourly; >= 7 -> continuous monitoring (Vigil: a set at least every 15 minutes).
    """
    band = _band(state)
    if band is None:
        return None
    if band == "high":
        return CONTINUOUS_MONITORING_MIN
    if band in ("medium", "low-medium"):
        return 60.0
    total = state.news2_total
    return 720.0 if total == 0 else 360.0


# --- rules ---------------------------------------------------------------------------------------


def _result(name: str, status: ItemStatus, detail: str, credit: float = 0.0) -> CareItemResult:
    if status == "met":
        credit = 1.0
    elif status in ("missing", "not_applicable", "pending"):
        credit = 0.0
    return CareItemResult(
        name=name,
        status=status,
        detail=detail,
        source=SOURCES[name],
        weight=WEIGHTS[name],
        credit=max(0.0, min(1.0, credit)),
    )


def _by_deadline(name: str, verb: str, at: float, deadline: float, met_note: str = "") -> CareItemResult:
    """Done at ``at``: met by the deadline, late (partial credit) after it."""
    if at <= deadline:
        return _result(name, "met", f"{verb} at {_fmt(at)}{met_note}")
    return _result(name, "late", f"{verb} at {_fmt(at)}, after {_fmt(deadline)}", LATE_CREDIT)


def _not_done(name: str, what: str, deadline: float, as_of: float | None) -> CareItemResult:
    if as_of is not None and as_of < deadline:
        return _result(name, "pending", f"{what} not yet given; due by {_fmt(deadline)}")
    return _result(name, "missing", f"{what} not given (due by {_fmt(deadline)})")


def _rule_antibiotics(state: PatientState, tl: _Timeline, as_of: float | None) -> CareItemResult:
    name = "antibiotics"
    if not state.suspected_sepsis:
        return _result(name, "not_applicable", "no suspected sepsis")
    window = _antibiotic_window_min(state)
    why = "possible shock or probable sepsis" if window == HOUR1_MIN else "possible sepsis without shock"
    first = _first(tl.times.get("antibiotic"))
    if first is None:
        return _not_done(name, ANTIBIOTIC_LABEL, window, as_of)
    if first <= window:
        return _result(name, "met", f"first dose at {_fmt(first)}, within {window:g} min ({why})")
    # Grading (docs/treatment.md): late but within 3 h earns half, later than 3 h a quarter.
    credit = LATE_CREDIT if first <= ANTIBIOTIC_POSSIBLE_SEPSIS_MIN else VERY_LATE_CREDIT
    return _result(name, "late", f"first dose at {_fmt(first)}, after the {window:g} min target ({why})", credit)


def _rule_blood_cultures(state: PatientState, tl: _Timeline, as_of: float | None) -> CareItemResult:
    name = "blood_cultures_before_antibiotics"
    if not state.suspected_sepsis:
        return _result(name, "not_applicable", "no suspected sepsis")
    culture = _first(tl.times.get("blood_culture"))
    antibiotic = _first(tl.times.get("antibiotic"))
    if culture is None:
        if antibiotic is None:
            return _not_done(name, "blood cultures", _antibiotic_window_min(state), as_of)
        return _result(name, "missing", f"no blood cultures; antibiotics started at {_fmt(antibiotic)}")
    if antibiotic is None or culture <= antibiotic:
        when = "before antibiotics" if antibiotic is not None else "antibiotics not yet given"
        return _result(name, "met", f"drawn at {_fmt(culture)} ({when})")
    # Cultures after the first antimicrobial dose lose sensitivity (SSC 2021): half credit.
    return _result(
        name,
        "late",
        f"drawn at {_fmt(culture)}, after antibiotics at {_fmt(antibiotic)}",
        LATE_CREDIT,
    )


def _rule_lactate_measured(state: PatientState, tl: _Timeline, as_of: float | None) -> CareItemResult:
    name = "lactate_measured"
    if not state.suspected_sepsis:
        return _result(name, "not_applicable", "no suspected sepsis")
    if state.lactate_mmol_l is not None:
        return _result(name, "met", f"initial lactate {state.lactate_mmol_l:g} mmol/L")
    first = _first(tl.times.get("lactate_ordered"))
    if first is None:
        return _not_done(name, "lactate", HOUR1_MIN, as_of)
    return _by_deadline(name, "measured", first, HOUR1_MIN)


def _rule_lactate_remeasured(state: PatientState, tl: _Timeline, as_of: float | None) -> CareItemResult:
    name = "lactate_remeasured"
    if not state.suspected_sepsis:
        return _result(name, "not_applicable", "no suspected sepsis")
    if state.lactate_mmol_l is None:
        return _result(name, "not_applicable", "initial lactate value unknown")
    if state.lactate_mmol_l <= 2.0:
        return _result(name, "not_applicable", f"initial lactate {state.lactate_mmol_l:g} mmol/L (<= 2)")
    measured = tl.times.get("lactate_ordered", [])
    # The initial value in the state came from the earliest measurement in the first hour, else time zero.
    initial = measured[0] if measured and measured[0] <= HOUR1_MIN else 0.0
    deadline = initial + LACTATE_REMEASURE_MIN
    repeat = next((t for t in measured if t >= initial + LACTATE_REMEASURE_GAP_MIN), None)
    if repeat is None:
        return _not_done(name, f"repeat lactate (initial {state.lactate_mmol_l:g} mmol/L > 2)", deadline, as_of)
    return _by_deadline(name, "remeasured", repeat, deadline)


def _fluid_target_ml(tl: _Timeline) -> float | None:
    return None if tl.weight_kg is None else FLUID_ML_PER_KG * tl.weight_kg


def _rule_crystalloid(state: PatientState, tl: _Timeline, as_of: float | None) -> CareItemResult:
    name = "crystalloid_30ml_kg"
    if not state.suspected_sepsis:
        return _result(name, "not_applicable", "no suspected sepsis")
    if not _hypoperfusion(state):
        return _result(name, "not_applicable", "no hypotension and lactate < 4 mmol/L (or unknown)")
    in_window = sum(ml for t, ml in tl.fluids_ml if t <= FLUID_WINDOW_MIN)
    after = sum(ml for t, ml in tl.fluids_ml if t > FLUID_WINDOW_MIN)
    target = _fluid_target_ml(tl)
    window_open = as_of is not None and as_of < FLUID_WINDOW_MIN
    if in_window + after == 0:
        return _not_done(name, "crystalloid (30 mL/kg)", FLUID_WINDOW_MIN, as_of)
    if target is None:
        status: ItemStatus = "pending" if window_open else "late"
        return _result(name, status, f"{in_window + after:g} mL given; weight unknown, 30 mL/kg unchecked", 0.5)
    weight = target / FLUID_ML_PER_KG
    if in_window >= target - 1e-6:
        return _result(name, "met", f"{in_window:g} mL ({in_window / weight:.1f} mL/kg) within 3 h")
    # Partial: volume inside the 3 h window counts fully, volume after it half (docs/treatment.md).
    credit = min(1.0, in_window / target + LATE_CREDIT * after / target)
    detail = (
        f"{in_window:g} mL within 3 h ({in_window / weight:.1f} mL/kg)"
        f"{f' + {after:g} mL later' if after else ''}; target 30 mL/kg = {target:g} mL"
    )
    return _result(name, "pending" if window_open else "late", detail, credit)


def _rule_vasopressor(state: PatientState, tl: _Timeline, as_of: float | None) -> CareItemResult:
    name = "vasopressor_map_65"
    if not state.suspected_sepsis:
        return _result(name, "not_applicable", "no suspected sepsis")
    if not _hypotensive(state):
        return _result(name, "not_applicable", "not hypotensive (MAP >= 65, SBP >= 90 or unknown)")
    if state.hypotension_after_fluids is False:
        return _result(name, "not_applicable", "MAP >= 65 mmHg after fluids")
    first = _first(tl.times.get("vasopressor"))
    if first is None:
        return _not_done(name, "vasopressor (MAP target >= 65 mmHg)", HOUR1_MIN, as_of)
    return _by_deadline(name, "started", first, HOUR1_MIN, ", titrate to MAP >= 65 mmHg")


def _rule_observation_frequency(state: PatientState, tl: _Timeline, as_of: float | None) -> CareItemResult:
    name = "news2_observation_frequency"
    required = required_observation_interval_min(state)
    if required is None:
        return _result(name, "not_applicable", "NEWS2 unknown")
    band = _band(state)
    horizon = tl.horizon_min
    # The observation set that produced the NEWS2 is the one at time zero.
    sets = [t for t in tl.times.get("observation_set", []) if 0.0 < t <= horizon]
    marks = [0.0, *sets, horizon]
    largest_gap = max(b - a for a, b in zip(marks, marks[1:], strict=False))
    need = "continuous monitoring" if required <= CONTINUOUS_MONITORING_MIN else f"every {required:g} min"
    if largest_gap <= required + 1e-9:
        if not sets:
            status: ItemStatus = "pending" if as_of is not None else "met"
            return _result(name, status, f"NEWS2 {band}: {need}; next set due by {_fmt(required)}")
        return _result(name, "met", f"NEWS2 {band}: {need}; largest gap {largest_gap:g} min")
    if not sets:
        return _result(name, "missing", f"NEWS2 {band}: {need}; no observation set after time zero")
    return _result(name, "late", f"NEWS2 {band}: {need}; largest gap {largest_gap:g} min", LATE_CREDIT)


def _rule_escalation(state: PatientState, tl: _Timeline, as_of: float | None) -> CareItemResult:
    name = "news2_escalation"
    band = _band(state)
    if band is None:
        return _result(name, "not_applicable", "NEWS2 unknown")
    if band == "low":
        return _result(name, "not_applicable", "NEWS2 low: ward-based response by the registered nurse")
    if band == "high":
        deadline, need, role = (
            EMERGENCY_REVIEW_MIN,
            "emergency assessment by the critical-care team",
            "critical_care",
        )
    else:
        deadline, need, role = URGENT_REVIEW_MIN, "urgent review by a clinician", None
    if not tl.reviews:
        return _not_done(name, f"NEWS2 {band}: {need}", deadline, as_of)
    if any(t <= deadline and (role is None or r == role) for t, r in tl.reviews):
        t = next(t for t, r in tl.reviews if t <= deadline and (role is None or r == role))
        return _result(name, "met", f"NEWS2 {band}: {need} at {_fmt(t)}")
    t, r = tl.reviews[0]
    if as_of is not None and as_of < deadline:
        return _result(name, "pending", f"NEWS2 {band}: review by {r or 'unknown role'} at {_fmt(t)}; {need} due")
    return _result(
        name,
        "late",
        f"NEWS2 {band}: review by {r or 'unknown role'} at {_fmt(t)}; needed {need} by {_fmt(deadline)}",
        LATE_CREDIT,
    )


RULES = (
    _rule_lactate_measured,
    _rule_lactate_remeasured,
    _rule_blood_cultures,
    _rule_antibiotics,
    _rule_crystalloid,
    _rule_vasopressor,
    _rule_observation_frequency,
    _rule_escalation,
)


# --- scoring -------------------------------------------------------------------------------------


def evaluate_plan(plan: TreatmentPlan, *, as_of_min: float | None = None) -> list[CareItemResult]:
    """Every guideline item's verdict for this plan (plan mode) or the care so far (``as_of_min``)."""
    horizon = plan.horizon_min if as_of_min is None else max(as_of_min, 0.0)
    tl = _timeline(plan, horizon)
    if as_of_min is not None:
        # Streaming: only what has happened by now counts.
        tl = _Timeline(
            {a: [t for t in ts if t <= as_of_min] for a, ts in tl.times.items()},
            [(t, ml) for t, ml in tl.fluids_ml if t <= as_of_min],
            [(t, r) for t, r in tl.reviews if t <= as_of_min],
            tl.weight_kg,
            horizon,
        )
    return [rule(plan.state, tl, as_of_min) for rule in RULES]


def score_value(results: Iterable[CareItemResult]) -> float:
    """0-100: weighted credit over the items that apply (met, late, missing), one decimal.

    Not-applicable and pending items are left out; with nothing applicable the score is 100.
    """
    applicable = [r for r in results if r.status in ("met", "late", "missing")]
    total_weight = sum(r.weight for r in applicable)
    if total_weight == 0:
        return 100.0
    return round(100.0 * sum(r.weight * r.credit for r in applicable) / total_weight, 1)


def _plan_score(plan: TreatmentPlan) -> tuple[float, list[CareItemResult]]:
    results = evaluate_plan(plan)
    return score_value(results), results


# --- optimization --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    kind: ChangeKind
    item: TreatmentItem
    replaces: int | None
    change: str
    order: tuple[float, ...] = field(default=())  # tie-break among equal gains (larger wins)


def _clock(plan: TreatmentPlan, minutes: float) -> str:
    if plan.time_zero is None:
        return _fmt(minutes)
    at = (plan.time_zero + timedelta(minutes=minutes)).astimezone(UTC)
    return f"{_fmt(minutes)} ({at:%H:%M}Z)"


def _describe_add(plan: TreatmentPlan, item: TreatmentItem, state: PatientState, target_ml: float | None) -> str:
    t = _clock(plan, _minutes(item.at, plan.time_zero))
    match item.action:
        case "antibiotic":
            return f"Give {ANTIBIOTIC_LABEL} at {t}"
        case "blood_culture":
            return f"Draw blood cultures at {t}, before antibiotics"
        case "lactate_ordered":
            return f"Measure lactate at {t}"
        case "crystalloid_ml":
            assert item.dose is not None
            return f"Give {item.dose.value:g} mL crystalloid at {t} (30 mL/kg = {target_ml:g} mL within 3 h)"
        case "vasopressor":
            return f"Start a vasopressor (noradrenaline first line) at {t}, titrated to MAP >= 65 mmHg"
        case "clinician_review":
            if item.role == "critical_care":
                return f"Emergency assessment by the critical-care team at {t}"
            return f"Urgent review by a clinician at {t}"
        case "observation_set":
            every = item.every_min or 0
            if every <= CONTINUOUS_MONITORING_MIN:
                return f"Continuous monitoring (observations every {every:g} min) from {t}"
            return f"Observations every {every:g} min from {t}"
    return f"Add {LABELS[item.action]} at {t}"


def _candidates(plan: TreatmentPlan, earliest_min: float) -> list[_Candidate]:
    state = plan.state
    tl = _timeline(plan, plan.horizon_min)
    times = [t for t in CANDIDATE_MIN if earliest_min <= t <= max(plan.horizon_min, earliest_min)]
    if earliest_min > 0 and earliest_min not in times:
        times.insert(0, earliest_min)
    target = _fluid_target_ml(tl)
    in_window = sum(ml for t, ml in tl.fluids_ml if t <= FLUID_WINDOW_MIN)
    deficit = None if target is None else max(0.0, target - in_window)
    required = required_observation_interval_min(state)
    band = _band(state)
    out: list[_Candidate] = []

    # add: one new item, earliest time preferred (SSC 2021: "immediately")
    for t in times:
        new: list[TreatmentItem] = [
            TreatmentItem(action="antibiotic", at=t),
            TreatmentItem(action="blood_culture", at=t),
            TreatmentItem(action="lactate_ordered", at=t),
            TreatmentItem(action="vasopressor", at=t),
            TreatmentItem(
                action="clinician_review", at=t, role="critical_care" if band == "high" else "ward_clinician"
            ),
        ]
        if deficit and t <= FLUID_WINDOW_MIN:
            new.append(TreatmentItem(action="crystalloid_ml", at=t, dose=Dose(value=round(deficit), unit="mL")))
        if required is not None:
            new.append(TreatmentItem(action="observation_set", at=t, every_min=required))
        for item in new:
            out.append(_Candidate("add", item, None, _describe_add(plan, item, state, target), (0.0, -t)))

    for index, item in enumerate(plan.items):
        at = _minutes(item.at, plan.time_zero)
        label = LABELS[item.action]
        # move_earlier: the smallest move wins a tie
        if item.action not in ("weight_kg", "oxygen"):
            for t in times:
                if t < at:
                    moved = item.model_copy(update={"at": t})
                    change = f"Move {label} from {_clock(plan, at)} to {_clock(plan, t)}"
                    out.append(_Candidate("move_earlier", moved, index, change, (1.0, t)))
        # adjust_dose: top the fluid inside the window up to 30 mL/kg; observe as often as the band needs
        if item.action == "crystalloid_ml" and deficit and at <= FLUID_WINDOW_MIN and item.dose is not None:
            value = min(20000.0, round(item.dose.value + deficit))
            dosed = item.model_copy(update={"dose": Dose(value=value, unit="mL")})
            change = (
                f"Increase crystalloid at {_clock(plan, at)} from {item.dose.value:g} to {value:g} mL "
                f"(30 mL/kg = {target:g} mL within 3 h)"
            )
            out.append(_Candidate("adjust_dose", dosed, index, change, (2.0,)))
        if item.action == "observation_set" and required is not None and (item.every_min or math.inf) > required:
            every = item.model_copy(update={"every_min": required})
            old = f"every {item.every_min:g} min" if item.every_min else "once"
            how = "continuously" if required <= CONTINUOUS_MONITORING_MIN else f"every {required:g} min"
            change = f"Observe {how} from {_clock(plan, at)} instead of {old}"
            out.append(_Candidate("adjust_dose", every, index, change, (2.0,)))
    return out


def _with_change(plan: TreatmentPlan, item: TreatmentItem, replaces: int | None) -> TreatmentPlan:
    items = list(plan.items)
    if replaces is None:
        items.append(item)
    else:
        items[replaces] = item
    return plan.model_copy(update={"items": items})


def apply_suggestion(plan: TreatmentPlan, suggestion: PlanSuggestion) -> TreatmentPlan:
    """The plan with one suggestion applied. Apply a list of suggestions in order: adds append, so
    each suggestion's ``replaces`` index refers to the plan after the ones before it."""
    return _with_change(plan, suggestion.item, suggestion.replaces)


def suggest_changes(plan: TreatmentPlan, *, earliest_min: float = 0.0, max_changes: int = 8) -> list[PlanSuggestion]:
    """The smallest set of changes that raises the score most (greedy over single changes).

    Each step scores every candidate single change (add one item, move one item earlier, adjust one
    dose) and keeps the one with the largest gain; ties go to the smaller change (adjust a dose,
    then the smallest move earlier, then an add at the earliest time). It stops when no single change
    gains anything. ``gain`` is score(after) - score(before) for that step, in points.
    """
    suggestions: list[PlanSuggestion] = []
    current = plan
    before, before_results = _plan_score(current)
    while len(suggestions) < max_changes and before < 100.0:
        best: tuple[tuple[float, ...], _Candidate, float, list[CareItemResult]] | None = None
        for candidate in _candidates(current, earliest_min):
            after, results = _plan_score(_with_change(current, candidate.item, candidate.replaces))
            gain = round(after - before, 1)
            if gain <= 0:
                continue
            key = (gain, *candidate.order)
            if best is None or key > best[0]:
                best = (key, candidate, after, results)
        if best is None:
            break
        _, chosen, after, results = best
        improved = max(
            zip(before_results, results, strict=True),
            key=lambda pair: pair[1].weight * pair[1].credit - pair[0].weight * pair[0].credit,
        )[1].name
        suggestions.append(
            PlanSuggestion(
                change=chosen.change,
                kind=chosen.kind,
                item=chosen.item,
                replaces=chosen.replaces,
                addresses=improved,
                gain=round(after - before, 1),
                score_after=after,
            )
        )
        current = _with_change(current, chosen.item, chosen.replaces)
        before, before_results = after, results
    return suggestions


def _sources(results: Iterable[CareItemResult]) -> list[str]:
    """The references behind the items that applied."""
    used = " ".join(r.source for r in results if r.status != "not_applicable")
    return [ref for ref in (SSC_2021, SSC_HOUR1_2018, RCP_NEWS2_2017) if ref in used]


def score_plan(plan: TreatmentPlan, *, suggest: bool = True, max_changes: int = 8) -> TreatmentScore:
    """Score a proposed plan (``vigil plan score``) and suggest the changes that raise it most."""
    value, results = _plan_score(plan)
    return TreatmentScore(
        patient_id=plan.patient_id,
        score=value,
        items=results,
        suggestions=suggest_changes(plan, max_changes=max_changes) if suggest else [],
        sources=_sources(results),
    )


# --- streaming entry point -----------------------------------------------------------------------


def _as_minutes(now: float | datetime | None, time_zero: datetime | None) -> float | None:
    if now is None:
        return None
    if isinstance(now, datetime):
        if time_zero is None:
            raise ValueError("now as a datetime needs time_zero")
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return (now - time_zero).total_seconds() / 60.0
    return float(now)


def score_patient_care(
    state: PatientState | Mapping[str, Any],
    items: Iterable[TreatmentItem | Mapping[str, Any]],
    *,
    time_zero: datetime | None = None,
    now: float | datetime | None = None,
    patient_id: str | None = None,
    suggest: bool = True,
    max_suggestions: int = 8,
) -> TreatmentScore:
    """Score the care a patient has had so far (the streaming treatment agent's entry point).

    ``state`` is a ``PatientState`` or a mapping of its fields (a ``time_zero`` key is accepted there
    too); ``items`` are ``TreatmentItem`` s or mappings (``action``, ``at``, optional ``dose``,
    ``role``...), ``at`` in minutes after time zero or an aware datetime. With ``now`` (minutes after
    time zero, or a datetime), items after ``now`` are ignored and items whose deadline is still
    ahead are ``pending``; suggestions then only add items from ``now`` on, and their gains are
    measured on the care projected to the end of the plan horizon (past care plus the change).
    Without ``now`` the items are scored as a complete plan.
    """
    if isinstance(state, Mapping):
        fields = dict(state)
        mapped_time_zero = fields.pop("time_zero", None)
        time_zero = time_zero or mapped_time_zero
        state = PatientState.model_validate(fields)
    parsed = [i if isinstance(i, TreatmentItem) else TreatmentItem.model_validate(i) for i in items]
    plan = TreatmentPlan.model_validate(
        {"patient_id": patient_id, "time_zero": time_zero, "state": state, "items": parsed}
    )
    as_of = _as_minutes(now, plan.time_zero)
    if as_of is None:
        return score_plan(plan, suggest=suggest)
    results = evaluate_plan(plan, as_of_min=as_of)
    past = plan.model_copy(
        update={
            "items": [i for i in plan.items if _minutes(i.at, plan.time_zero) <= as_of],
            "horizon_min": max(plan.horizon_min, as_of),
        }
    )
    return TreatmentScore(
        patient_id=plan.patient_id,
        score=score_value(results),
        items=results,
        suggestions=suggest_changes(past, earliest_min=max(as_of, 0.0), max_changes=max_suggestions) if suggest else [],
        sources=_sources(results),
        as_of_min=as_of,
        projected_score=_plan_score(past)[0],
    )
