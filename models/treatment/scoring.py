"""Entry points: score a proposed plan (``vigil plan score``) or the care a patient has had so far
(the streaming treatment agent)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from vigil.models.treatment.guidelines import RCP_NEWS2_2017, SSC_2021, SSC_HOUR1_2018
from vigil.models.treatment.optimizer import suggest_changes
from vigil.models.treatment.patient import pathways
from vigil.models.treatment.rules import evaluate_plan, plan_score, score_value
from vigil.models.treatment.timeline import minutes_after
from vigil.schemas.treatment import CareItemResult, PatientState, TreatmentItem, TreatmentPlan, TreatmentScore


def _sources(results: Iterable[CareItemResult]) -> list[str]:
    """The references behind the items that applied."""
    used = " ".join(r.source for r in results if r.status != "not_applicable")
    return [ref for ref in (SSC_2021, SSC_HOUR1_2018, RCP_NEWS2_2017) if ref in used]


def _verdict(plan: TreatmentPlan, results: list[CareItemResult]) -> dict[str, Any]:
    """The score and what it rests on: status, pathways, how many items were due and on time."""
    value = score_value(results)
    triggered = pathways(plan.state)
    status = "not_applicable" if not triggered else "nothing_due" if value is None else "scored"
    due = [r for r in results if r.status in ("met", "late", "missing")]
    return {
        "patient_id": plan.patient_id,
        "score": value,
        "status": status,
        "pathways": triggered,
        "items_due": len(due),
        "items_on_time": sum(r.status == "met" for r in due),
        "time_zero": plan.time_zero,
        "items": results,
        "sources": _sources(results),
    }


def score_plan(
    plan: TreatmentPlan, *, suggest: bool = True, max_changes: int = 8, search_s: float | None = None
) -> TreatmentScore:
    """Score a proposed plan (``vigil plan score``) and suggest the changes that raise it most
    (within ``search_s`` seconds when given: ``suggest_changes``)."""
    results = evaluate_plan(plan)
    return TreatmentScore(
        **_verdict(plan, results),
        suggestions=suggest_changes(plan, max_changes=max_changes, search_s=search_s) if suggest else [],
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
    search_s: float | None = None,
) -> TreatmentScore:
    """Score the care a patient has had so far (the streaming treatment agent's entry point).

    ``state`` is a ``PatientState`` or a mapping of its fields (a ``time_zero`` key is accepted there
    too); ``items`` are ``TreatmentItem`` s or mappings (``action``, ``at``, optional ``dose``,
    ``role``...), ``at`` in minutes after time zero or an aware datetime. With ``now`` (minutes after
    time zero, or a datetime), items after ``now`` are ignored and items whose deadline is still
    ahead are ``pending``; suggestions then only add items from ``now`` on, and their gains are
    measured on the care projected to the end of the plan horizon (past care plus the change).
    Without ``now`` the items are scored as a complete plan. ``search_s`` bounds the suggestion
    search's time (``suggest_changes``).
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
        return score_plan(plan, suggest=suggest, search_s=search_s)
    results = evaluate_plan(plan, as_of_min=as_of)
    past = plan.model_copy(
        update={
            "items": [i for i in plan.items if minutes_after(i.at, plan.time_zero) <= as_of],
            "horizon_min": max(plan.horizon_min, as_of),
        }
    )
    return TreatmentScore(
        **_verdict(plan, results),
        suggestions=suggest_changes(past, earliest_min=max(as_of, 0.0), max_changes=max_suggestions, search_s=search_s)
        if suggest
        else [],
        as_of_min=as_of,
        projected_score=plan_score(past)[0],
    )
