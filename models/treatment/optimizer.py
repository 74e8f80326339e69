"""Suggestions: the smallest set of single changes that raises the plan's score most (greedy)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vigil.models.treatment.guidelines import (
    ANTIBIOTIC_LABEL,
    CANDIDATE_MIN,
    CONTINUOUS_MONITORING_MIN,
    FLUID_WINDOW_MIN,
    LABELS,
    NOMINAL_WEIGHT_KG,
)
from vigil.models.treatment.patient import (
    hypotension_onset_at_target,
    required_observation_interval_min,
    response_band,
)
from vigil.models.treatment.rules import NOMINAL_FLUID_TARGET_ML, fluid_target_ml, plan_score
from vigil.models.treatment.timeline import build_timeline, minutes_after
from vigil.schemas.treatment import (
    CareItemResult,
    ChangeKind,
    Dose,
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


def _describe_add(item: TreatmentItem, target_ml: float | None) -> str:
    """The action in words, without a time: the view adds the clock time in the ward's zone."""
    match item.action:
        case "antibiotic":
            return f"Give {ANTIBIOTIC_LABEL}"
        case "blood_culture":
            return "Draw blood cultures, before antibiotics"
        case "lactate_ordered":
            return "Measure lactate"
        case "crystalloid_ml":
            assert item.dose is not None
            if target_ml is None:
                return f"Give {item.dose.value:g} mL crystalloid {_UNSIZED}"
            return f"Give {item.dose.value:g} mL crystalloid (30 mL/kg = {target_ml:g} mL within 3 h)"
        case "vasopressor":
            return "Start a vasopressor (noradrenaline first line), titrated to MAP >= 65 mmHg"
        case "clinician_review":
            if item.role == "critical_care":
                return "Emergency assessment by the critical-care team"
            return "Urgent review by a clinician"
        case "observation_set":
            every = item.every_min or 0
            if every <= CONTINUOUS_MONITORING_MIN:
                return f"Continuous monitoring (observations every {every:g} min)"
            return f"Observations every {every:g} min"
    return f"Add {LABELS[item.action]}"


# the rule judges an unsized volume against 30 mL/kg of the nominal weight for at most half the credit
# (``rules.unsized_fluid_credit``): the words say so, and ask for the weight
_UNSIZED = (
    f"(30 mL/kg within 3 h = {NOMINAL_FLUID_TARGET_ML:g} mL at a nominal {NOMINAL_WEIGHT_KG:g} kg); record the "
    "weight to size it (half the points while the weight is unknown)"
)


def _at_or_after(times: list[float], onset: float | None, earliest_min: float) -> list[float]:
    """The candidate times for a vasopressor: from the onset on for a patient at the target at time
    zero (``hypotension_onset_at_target``), the onset itself first; one proposed before it, the MAP at
    target, meets nothing ("Start a vasopressor at T+0" for a fall at T+150)."""
    if onset is None or onset <= earliest_min:
        return times
    return [onset, *(t for t in times if t > onset)]


def candidates(plan: TreatmentPlan, earliest_min: float) -> list[_Candidate]:
    state = plan.state
    tl = build_timeline(plan, plan.horizon_min)
    times = [t for t in CANDIDATE_MIN if earliest_min <= t <= max(plan.horizon_min, earliest_min)]
    if earliest_min > 0 and earliest_min not in times:
        times.insert(0, earliest_min)
    target = fluid_target_ml(tl)
    in_window = sum(ml for t, ml in tl.fluids_ml if t <= FLUID_WINDOW_MIN)
    # with the weight unknown the volume still missing is sized at the nominal weight (the rule's
    # partial credit is judged against it): a 250 mL bolus earned as much as 2100 mL, and nothing
    # proposed the rest
    deficit = max(0.0, (NOMINAL_FLUID_TARGET_ML if target is None else target) - in_window)
    onset = hypotension_onset_at_target(state)
    pressor_times = _at_or_after(times, onset, earliest_min)
    required = required_observation_interval_min(state)
    band = response_band(state)
    out: list[_Candidate] = []

    # add: one new item, earliest time preferred (SSC 2021: "immediately")
    for t in times:
        new: list[TreatmentItem] = [
            TreatmentItem(action="antibiotic", at=t),
            TreatmentItem(action="blood_culture", at=t),
            TreatmentItem(action="lactate_ordered", at=t),
            *([TreatmentItem(action="vasopressor", at=t)] if t in pressor_times else []),
            TreatmentItem(
                action="clinician_review", at=t, role="critical_care" if band == "high" else "ward_clinician"
            ),
        ]
        if deficit and t <= FLUID_WINDOW_MIN:
            new.append(TreatmentItem(action="crystalloid_ml", at=t, dose=Dose(value=round(deficit), unit="mL")))
        if required is not None:
            new.append(TreatmentItem(action="observation_set", at=t, every_min=required))
        for item in new:
            out.append(_Candidate("add", item, None, _describe_add(item, target), (0.0, -t)))
    for t in (t for t in pressor_times if t not in times):  # the onset itself
        pressor = TreatmentItem(action="vasopressor", at=t)
        out.append(_Candidate("add", pressor, None, _describe_add(pressor, target), (0.0, -t)))

    for index, item in enumerate(plan.items):
        at = minutes_after(item.at, plan.time_zero)
        if at < earliest_min:
            continue  # what is past is history: a plan changes only what is still ahead
        label = LABELS[item.action]
        # move_earlier: the smallest move wins a tie
        if item.action not in ("weight_kg", "oxygen"):
            for t in pressor_times if item.action == "vasopressor" else times:
                if t < at:
                    moved = item.model_copy(update={"at": t})
                    change = f"Move {label}"
                    out.append(_Candidate("move_earlier", moved, index, change, (1.0, t)))
        # adjust_dose: top the fluid inside the window up to 30 mL/kg; observe as often as the band needs
        if item.action == "crystalloid_ml" and deficit and at <= FLUID_WINDOW_MIN and item.dose is not None:
            value = min(20000.0, round(item.dose.value + deficit))
            dosed = item.model_copy(update={"dose": Dose(value=value, unit="mL")})
            sized = f"(30 mL/kg = {target:g} mL within 3 h)" if target is not None else _UNSIZED
            change = f"Increase crystalloid from {item.dose.value:g} to {value:g} mL {sized}"
            out.append(_Candidate("adjust_dose", dosed, index, change, (2.0,)))
        if item.action == "observation_set" and required is not None and (item.every_min or math.inf) > required:
            every = item.model_copy(update={"every_min": required})
            old = f"every {item.every_min:g} min" if item.every_min else "once"
            how = "continuously" if required <= CONTINUOUS_MONITORING_MIN else f"every {required:g} min"
            change = f"Observe {how} instead of {old}"
            out.append(_Candidate("adjust_dose", every, index, change, (2.0,)))
    return out


def _time(plan: TreatmentPlan, minutes: float | None) -> datetime | None:
    if plan.time_zero is None or minutes is None:
        return None
    return plan.time_zero + timedelta(minutes=minutes)


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


def suggest_changes(
    plan: TreatmentPlan, *, earliest_min: float = 0.0, max_changes: int = 8, search_s: float | None = None
) -> list[PlanSuggestion]:
    """The smallest set of changes that raises the score most (greedy over single changes).

    Each step scores every candidate single change (add one item, move one item earlier, adjust one
    dose) and keeps the one with the largest gain; ties go to the smaller change (adjust a dose,
    then the smallest move earlier, then an add at the earliest time). It stops when no single change
    gains anything. ``gain`` is score(after) - score(before) for that step, in points.

    ``search_s`` bounds the search's time (monotonic seconds): past it, the step under way is dropped
    and the suggestions of the steps completed are returned (each the best single change of its step),
    so a plan of hundreds of items cannot hold a worker for hours.
    """
    suggestions: list[PlanSuggestion] = []
    current = plan
    before, before_results = plan_score(current)
    if before is None:
        return suggestions  # no pathway triggered: nothing to suggest
    deadline = None if search_s is None else time.monotonic() + search_s
    while len(suggestions) < max_changes and before < 100.0:
        best: tuple[tuple[float, ...], _Candidate, float, list[CareItemResult]] | None = None
        for candidate in candidates(current, earliest_min):
            if deadline is not None and time.monotonic() > deadline:
                return suggestions
            after, results = plan_score(with_change(current, candidate.item, candidate.replaces))
            if after is None:
                continue
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
        )[0]
        at_min = minutes_after(chosen.item.at, plan.time_zero)
        from_min = None if chosen.replaces is None else minutes_after(current.items[chosen.replaces].at, plan.time_zero)
        suggestions.append(
            PlanSuggestion(
                change=chosen.change,
                kind=chosen.kind,
                item=chosen.item,
                replaces=chosen.replaces,
                addresses=improved.name,
                gain=round(after - before, 1),
                score_after=after,
                at_min=at_min,
                at=_time(plan, at_min),
                due_min=improved.due_min,
                due=_time(plan, improved.due_min),
                from_min=from_min,
                from_at=_time(plan, from_min),
            )
        )
        current = with_change(current, chosen.item, chosen.replaces)
        before, before_results = after, results
    return suggestions
