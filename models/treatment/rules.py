"""The eight guideline items, each graded met / late / missing / pending / not applicable, and the score."""

from __future__ import annotations

from collections.abc import Iterable

from vigil.models.treatment.guidelines import (
    ANTIBIOTIC_LABEL,
    ANTIBIOTIC_POSSIBLE_SEPSIS_MIN,
    CONTINUOUS_MONITORING_MIN,
    EMERGENCY_REVIEW_MIN,
    FLUID_ML_PER_KG,
    FLUID_WINDOW_MIN,
    HOUR1_MIN,
    LACTATE_REMEASURE_GAP_MIN,
    LACTATE_REMEASURE_MIN,
    LATE_CREDIT,
    NOMINAL_WEIGHT_KG,
    SOURCES,
    URGENT_REVIEW_MIN,
    VASOPRESSOR_RUNNING_MIN,
    VERY_LATE_CREDIT,
    WEIGHTS,
)
from vigil.models.treatment.patient import (
    antibiotic_window_min,
    below_map_target,
    hypoperfusion,
    hypotension_onset_at_target,
    pathways,
    required_observation_interval_min,
    response_band,
    vasopressor_deadline_min,
)
from vigil.models.treatment.timeline import Timeline, build_timeline, first_time, fmt_min
from vigil.schemas.treatment import CareItemResult, ItemStatus, PatientState, TreatmentPlan


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
        return _result(name, "met", f"{verb} at {fmt_min(at)}{met_note}")
    return _result(name, "late", f"{verb} at {fmt_min(at)}, after {fmt_min(deadline)}", LATE_CREDIT)


def _not_done(name: str, what: str, deadline: float, as_of: float | None) -> CareItemResult:
    if as_of is not None and as_of < deadline:
        return _result(name, "pending", f"{what} not yet given; due by {fmt_min(deadline)}")
    return _result(name, "missing", f"{what} not given (due by {fmt_min(deadline)})")


def _rule_antibiotics(state: PatientState, tl: Timeline, as_of: float | None) -> CareItemResult:
    name = "antibiotics"
    if not state.suspected_sepsis:
        return _result(name, "not_applicable", "no suspected sepsis")
    window = antibiotic_window_min(state)
    why = "possible shock or probable sepsis" if window == HOUR1_MIN else "possible sepsis without shock"
    first = first_time(tl.times.get("antibiotic"))
    if first is None:
        return _not_done(name, ANTIBIOTIC_LABEL, window, as_of)
    if first <= window:
        return _result(name, "met", f"first dose at {fmt_min(first)}, within {window:g} min ({why})")
    # Grading (docs/treatment.md): late but within 3 h earns half, later than 3 h a quarter.
    credit = LATE_CREDIT if first <= ANTIBIOTIC_POSSIBLE_SEPSIS_MIN else VERY_LATE_CREDIT
    return _result(name, "late", f"first dose at {fmt_min(first)}, after the {window:g} min target ({why})", credit)


def _rule_blood_cultures(state: PatientState, tl: Timeline, as_of: float | None) -> CareItemResult:
    name = "blood_cultures_before_antibiotics"
    if not state.suspected_sepsis:
        return _result(name, "not_applicable", "no suspected sepsis")
    culture = first_time(tl.times.get("blood_culture"))
    antibiotic = first_time(tl.times.get("antibiotic"))
    if culture is None:
        if antibiotic is None:
            return _not_done(name, "blood cultures", antibiotic_window_min(state), as_of)
        return _result(name, "missing", f"no blood cultures; antibiotics started at {fmt_min(antibiotic)}")
    if antibiotic is None or culture <= antibiotic:
        when = "before antibiotics" if antibiotic is not None else "antibiotics not yet given"
        return _result(name, "met", f"drawn at {fmt_min(culture)} ({when})")
    # Cultures after the first antimicrobial dose lose sensitivity (SSC 2021): half credit.
    return _result(
        name,
        "late",
        f"drawn at {fmt_min(culture)}, after antibiotics at {fmt_min(antibiotic)}",
        LATE_CREDIT,
    )


def _rule_lactate_measured(state: PatientState, tl: Timeline, as_of: float | None) -> CareItemResult:
    name = "lactate_measured"
    if not state.suspected_sepsis:
        return _result(name, "not_applicable", "no suspected sepsis")
    if state.lactate_mmol_l is not None:
        return _result(name, "met", f"initial lactate {state.lactate_mmol_l:g} mmol/L")
    # a sample from more than an hour before recognition is not this patient's initial lactate (as
    # for ``initial_lactate_min``): it cannot show the hypoperfusion the bundle asks about
    first = next((t for t in tl.times.get("lactate_ordered", []) if t >= -HOUR1_MIN), None)
    if first is None:
        return _not_done(name, "lactate", HOUR1_MIN, as_of)
    return _by_deadline(name, "measured", first, HOUR1_MIN)


def _rule_lactate_remeasured(state: PatientState, tl: Timeline, as_of: float | None) -> CareItemResult:
    name = "lactate_remeasured"
    if not state.suspected_sepsis:
        return _result(name, "not_applicable", "no suspected sepsis")
    if state.lactate_mmol_l is None:
        return _result(name, "not_applicable", "initial lactate value unknown")
    if state.lactate_mmol_l <= 2.0:
        return _result(name, "not_applicable", f"initial lactate {state.lactate_mmol_l:g} mmol/L (<= 2)")
    measured = tl.times.get("lactate_ordered", [])
    initial = initial_lactate_min(tl)
    deadline = initial + LACTATE_REMEASURE_MIN
    repeat = next((t for t in measured if t >= initial + LACTATE_REMEASURE_GAP_MIN), None)
    if repeat is None:
        return _not_done(name, f"repeat lactate (initial {state.lactate_mmol_l:g} mmol/L > 2)", deadline, as_of)
    return _by_deadline(name, "remeasured", repeat, deadline)


def initial_lactate_min(tl: Timeline) -> float:
    """When the state's initial lactate was drawn: the earliest draw within an hour either side of time
    zero, else time zero. A draw from hours before recognition is not it: its deadline for the repeat
    (2-4 h, SSC 2018) would have passed before the patient was recognised."""
    measured = tl.times.get("lactate_ordered", [])
    return next((t for t in measured if -HOUR1_MIN <= t <= HOUR1_MIN), 0.0)


def fluid_target_ml(tl: Timeline) -> float | None:
    return None if tl.weight_kg is None else FLUID_ML_PER_KG * tl.weight_kg


# Vigil: with the weight unknown the volume is judged against 30 mL/kg of a nominal 70 kg, for at most
# the half credit (``unsized_fluid_credit``)
NOMINAL_FLUID_TARGET_ML = FLUID_ML_PER_KG * NOMINAL_WEIGHT_KG


def volume_credit(in_window: float, after: float, target: float) -> float:
    """Partial credit for a volume short of ``target``: volume inside the 3 h window counts fully,
    volume after it half, up to the target (docs/treatment.md): twice the volume late is still late,
    never the full credit."""
    return min(1.0, in_window / target + LATE_CREDIT * min(after, max(0.0, target - in_window)) / target)


def unsized_fluid_credit(in_window: float, after: float) -> float:
    """With the weight unknown 30 mL/kg cannot be checked: half credit at most, in proportion to the
    volume against 30 mL/kg of ``NOMINAL_WEIGHT_KG`` (2100 mL). Any fluid earned the half credit, so
    250 mL scored as 2100 mL and nothing proposed the rest."""
    return LATE_CREDIT * volume_credit(in_window, after, NOMINAL_FLUID_TARGET_ML)


def _rule_crystalloid(state: PatientState, tl: Timeline, as_of: float | None) -> CareItemResult:
    name = "crystalloid_30ml_kg"
    if not state.suspected_sepsis:
        return _result(name, "not_applicable", "no suspected sepsis")
    if not hypoperfusion(state):
        return _result(name, "not_applicable", "no hypotension and lactate < 4 mmol/L (or unknown)")
    in_window = sum(ml for t, ml in tl.fluids_ml if t <= FLUID_WINDOW_MIN)
    after = sum(ml for t, ml in tl.fluids_ml if t > FLUID_WINDOW_MIN)
    target = fluid_target_ml(tl)
    window_open = as_of is not None and as_of < FLUID_WINDOW_MIN
    if in_window + after == 0:
        return _not_done(name, "crystalloid (30 mL/kg)", FLUID_WINDOW_MIN, as_of)
    if target is None:
        status: ItemStatus = "pending" if window_open else "late"
        detail = (
            f"{in_window + after:g} mL given; weight unknown, 30 mL/kg unchecked (judged against "
            f"{NOMINAL_FLUID_TARGET_ML:g} mL at {NOMINAL_WEIGHT_KG:g} kg, at most half credit)"
        )
        return _result(name, status, detail, unsized_fluid_credit(in_window, after))
    weight = target / FLUID_ML_PER_KG
    if in_window >= target - 1e-6:
        return _result(name, "met", f"{in_window:g} mL ({in_window / weight:.1f} mL/kg) within 3 h")
    credit = volume_credit(in_window, after, target)
    detail = (
        f"{in_window:g} mL within 3 h ({in_window / weight:.1f} mL/kg)"
        f"{f' + {after:g} mL later' if after else ''}; target 30 mL/kg = {target:g} mL"
    )
    return _result(name, "pending" if window_open else "late", detail, credit)


def _rule_vasopressor(state: PatientState, tl: Timeline, as_of: float | None) -> CareItemResult:
    name = "vasopressor_map_65"
    if not state.suspected_sepsis:
        return _result(name, "not_applicable", "no suspected sepsis")
    # SSC 2018: "if hypotensive during or after fluid resuscitation": at time zero below the target,
    # unless known to meet it after fluids; or known to fall below it during or after them
    if state.hypotension_after_fluids is False:
        return _result(name, "not_applicable", "MAP >= 65 mmHg after fluids")
    if not below_map_target(state) and state.hypotension_after_fluids is not True:
        return _result(name, "not_applicable", "MAP at target (>= 65; SBP >= 90 where MAP unknown) or unknown")
    deadline = vasopressor_deadline_min(state)
    starts = tl.times.get("vasopressor", [])
    if not starts:
        return _not_done(name, "vasopressor (MAP target >= 65 mmHg)", deadline, as_of)
    # at the target at time zero, a vasopressor already running when the MAP fell after fluids (the ED's
    # noradrenaline) is the bundle's vasopressor: the fall calls for titration, not a second one (graded
    # missing, the stream told clinicians to start one). The optimizer proposes none before the fall.
    onset = hypotension_onset_at_target(state)
    if onset is None:
        return _by_deadline(name, "started", starts[0], deadline, ", titrate to MAP >= 65 mmHg")
    # no stop is charted: a vasopressor event within VASOPRESSOR_RUNNING_MIN before the fall is taken as
    # running; an older one (phenylephrine in theatre, a weaned pressor) is not, and the fall needs one
    recent = [t for t in starts if onset - VASOPRESSOR_RUNNING_MIN <= t < onset]
    if recent:
        detail = f"running since {fmt_min(recent[0])}, before the MAP fell below 65 mmHg at {fmt_min(onset)}"
        return _result(name, "met", f"{detail}: titrate to MAP >= 65 mmHg")
    after = next((t for t in starts if t >= onset), None)
    if after is None:
        what = (
            f"vasopressor since the MAP fell below 65 mmHg at {fmt_min(onset)} (the one at "
            f"{fmt_min(starts[-1])} was over {VASOPRESSOR_RUNNING_MIN // 60} h before it)"
        )
        return _not_done(name, what, deadline, as_of)
    return _by_deadline(name, "started", after, deadline, ", titrate to MAP >= 65 mmHg")


def _rule_observation_frequency(state: PatientState, tl: Timeline, as_of: float | None) -> CareItemResult:
    name = "news2_observation_frequency"
    required = required_observation_interval_min(state)
    if required is None:
        return _result(name, "not_applicable", "NEWS2 unknown")
    band = response_band(state)
    # The observation set that produced the NEWS2 is the one at ``news2_at_min`` (time zero unless the
    # stream says otherwise): the gaps run from it.
    start = state.news2_at_min
    horizon = max(tl.horizon_min, start)
    sets = [t for t in tl.times.get("observation_set", []) if start < t <= horizon]
    marks = [start, *sets, horizon]
    largest_gap = max(b - a for a, b in zip(marks, marks[1:], strict=False))
    need = "continuous monitoring" if required <= CONTINUOUS_MONITORING_MIN else f"every {required:g} min"
    if largest_gap <= required + 1e-9:
        if not sets:
            status: ItemStatus = "pending" if as_of is not None else "met"
            return _result(name, status, f"NEWS2 {band}: {need}; next set due by {fmt_min(start + required)}")
        return _result(name, "met", f"NEWS2 {band}: {need}; largest gap {largest_gap:g} min")
    if not sets:
        since = "time zero" if start == 0.0 else f"the NEWS2 score at {fmt_min(start)}"
        return _result(name, "missing", f"NEWS2 {band}: {need}; no observation set after {since}")
    return _result(name, "late", f"NEWS2 {band}: {need}; largest gap {largest_gap:g} min", LATE_CREDIT)


def _rule_escalation(state: PatientState, tl: Timeline, as_of: float | None) -> CareItemResult:
    name = "news2_escalation"
    band = response_band(state)
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
    # the response to the NEWS2 score (at time zero unless ``news2_at_min`` says otherwise): a review
    # before it answered another score (RCP 2017 chart 3); the deadline runs from it
    start = state.news2_at_min
    deadline += start
    reviews = [(t, r) for t, r in tl.reviews if t >= start]
    if not reviews:
        return _not_done(name, f"NEWS2 {band}: {need}", deadline, as_of)
    if any(t <= deadline and (role is None or r == role) for t, r in reviews):
        t = next(t for t, r in reviews if t <= deadline and (role is None or r == role))
        return _result(name, "met", f"NEWS2 {band}: {need} at {fmt_min(t)}")
    t, r = reviews[0]
    if as_of is not None and as_of < deadline:
        return _result(name, "pending", f"NEWS2 {band}: review by {r or 'unknown role'} at {fmt_min(t)}; {need} due")
    return _result(
        name,
        "late",
        f"NEWS2 {band}: review by {r or 'unknown role'} at {fmt_min(t)}; needed {need} by {fmt_min(deadline)}",
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


def due_min(name: str, state: PatientState, tl: Timeline, as_of: float | None) -> float | None:
    """When the item falls (or fell) due, in minutes after time zero (the deadlines of the table in
    docs/treatment.md); for observations, when the next set is due after the last one so far."""
    match name:
        case "antibiotics" | "blood_cultures_before_antibiotics":
            return antibiotic_window_min(state)
        case "lactate_measured":
            return HOUR1_MIN
        case "vasopressor_map_65":
            return vasopressor_deadline_min(state)
        case "lactate_remeasured":
            return initial_lactate_min(tl) + LACTATE_REMEASURE_MIN
        case "crystalloid_30ml_kg":
            return FLUID_WINDOW_MIN
        case "news2_observation_frequency":
            required = required_observation_interval_min(state)
            if required is None:
                return None
            # the set of the NEWS2 score counts; in plan mode the first gap is measured from it
            start = state.news2_at_min
            reference = as_of if as_of is not None else start
            sets = (t for t in tl.times.get("observation_set", []) if start < t <= reference)
            return max([start, *sets]) + required
        case "news2_escalation":
            window = EMERGENCY_REVIEW_MIN if response_band(state) == "high" else URGENT_REVIEW_MIN
            return state.news2_at_min + window
    return None


def evaluate_plan(plan: TreatmentPlan, *, as_of_min: float | None = None) -> list[CareItemResult]:
    """Every guideline item's verdict for this plan (plan mode) or the care so far (``as_of_min``).

    With no pathway triggered (no suspected sepsis, NEWS2 low) every item is not applicable."""
    if not pathways(plan.state):
        why = "no pathway triggered (no suspected sepsis; NEWS2 0-4 without a single 3, or unknown)"
        return [_result(rule_name, "not_applicable", why) for rule_name in WEIGHTS]
    horizon = plan.horizon_min if as_of_min is None else max(as_of_min, 0.0)
    tl = build_timeline(plan, horizon)
    if as_of_min is not None:
        # Streaming: only what has happened by now counts.
        tl = Timeline(
            {a: [t for t in ts if t <= as_of_min] for a, ts in tl.times.items()},
            [(t, ml) for t, ml in tl.fluids_ml if t <= as_of_min],
            [(t, r) for t, r in tl.reviews if t <= as_of_min],
            tl.weight_kg,
            horizon,
        )
    results = [rule(plan.state, tl, as_of_min) for rule in RULES]
    state = plan.state
    return [
        r if r.status == "not_applicable" else r.model_copy(update={"due_min": due_min(r.name, state, tl, as_of_min)})
        for r in results
    ]


def score_value(results: Iterable[CareItemResult]) -> float | None:
    """The care score (docs/treatment.md): the weighted share of the guideline items due so far that
    were done on time, 0-100 to one decimal; a late item earns partial credit. Pending (not yet due)
    and not-applicable items are left out; with none due, there is no score (None)."""
    due = [r for r in results if r.status in ("met", "late", "missing")]
    total_weight = sum(r.weight for r in due)
    if total_weight == 0:
        return None
    return round(100.0 * sum(r.weight * r.credit for r in due) / total_weight, 1)


def plan_score(plan: TreatmentPlan) -> tuple[float | None, list[CareItemResult]]:
    results = evaluate_plan(plan)
    return score_value(results), results
