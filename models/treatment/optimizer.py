"""Suggestions: the smallest set of single changes that raises the plan's score most (greedy)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, timedelta

from vigil.models.treatment.guidelines import (
    ANTIBIOTIC_LABEL,
    CANDIDATE_MIN,
    CONTINUOUS_MONITORING_MIN,
    FLUID_WINDOW_MIN,
    LABELS,
)
from vigil.models.treatment.patient import required_observation_interval_min, response_band
from vigil.models.treatment.rules import fluid_target_ml, plan_score
from vigil.models.treatment.timeline import build_timeline, fmt_min, minutes_after
from vigil.schemas.treatment import (
    CareItemResult,
    ChangeKind,
    Dose,
    PatientState,
    PlanSuggestion,
    TreatmentItem,
    TreatmentPlan,
)


@dataclass(frozen=True)
class _Candidate:
    kind: ChangeKind
    item: TreatmentItem
    replaces: int | None
    change: str
    order: tuple[float, ...] = field(default=())  # tie-break among equal gains (larger wins)


def _clock(plan: TreatmentPlan, minutes: float) -> str:
    if plan.time_zero is None:
        return fmt_min(minutes)
    at = (plan.time_zero + timedelta(minutes=minutes)).astimezone(UTC)
    return f"{fmt_min(minutes)} ({at:%H:%M}Z)"


def _describe_add(plan: TreatmentPlan, item: TreatmentItem, state: PatientState, target_ml: float | None) -> str:
    t = _clock(plan, minutes_after(item.at, plan.time_zero))
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


def candidates(plan: TreatmentPlan, earliest_min: float) -> list[_Candidate]:
    state = plan.state
    tl = build_timeline(plan, plan.horizon_min)
    times = [t for t in CANDIDATE_MIN if earliest_min <= t <= max(plan.horizon_min, earliest_min)]
    if earliest_min > 0 and earliest_min not in times:
        times.insert(0, earliest_min)
    target = fluid_target_ml(tl)
    in_window = sum(ml for t, ml in tl.fluids_ml if t <= FLUID_WINDOW_MIN)
    deficit = None if target is None else max(0.0, target - in_window)
    required = required_observation_interval_min(state)
    band = response_band(state)
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
        at = minutes_after(item.at, plan.time_zero)
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


def with_change(plan: TreatmentPlan, item: TreatmentItem, replaces: int | None) -> TreatmentPlan:
    items = list(plan.items)
    if replaces is None:
        items.append(item)
    else:
        items[replaces] = item
    return plan.model_copy(update={"items": items})


def apply_suggestion(plan: TreatmentPlan, suggestion: PlanSuggestion) -> TreatmentPlan:
    """The plan with one suggestion applied. Apply a list of suggestions in order: adds append, so
    each suggestion's ``replaces`` index refers to the plan after the ones before it."""
    return with_change(plan, suggestion.item, suggestion.replaces)


def suggest_changes(plan: TreatmentPlan, *, earliest_min: float = 0.0, max_changes: int = 8) -> list[PlanSuggestion]:
    """The smallest set of changes that raises the score most (greedy over single changes).

    Each step scores every candidate single change (add one item, move one item earlier, adjust one
    dose) and keeps the one with the largest gain; ties go to the smaller change (adjust a dose,
    then the smallest move earlier, then an add at the earliest time). It stops when no single change
    gains anything. ``gain`` is score(after) - score(before) for that step, in points.
    """
    suggestions: list[PlanSuggestion] = []
    current = plan
    before, before_results = plan_score(current)
    while len(suggestions) < max_changes and before < 100.0:
        best: tuple[tuple[float, ...], _Candidate, float, list[CareItemResult]] | None = None
        for candidate in candidates(current, earliest_min):
            after, results = plan_score(with_change(current, candidate.item, candidate.replaces))
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
        current = with_change(current, chosen.item, chosen.replaces)
        before, before_results = after, results
    return suggestions
