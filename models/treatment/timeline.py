"""A plan's items as minutes after time zero, with repeating observation sets expanded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from vigil.schemas.display import duration
from vigil.schemas.treatment import MAX_PLAN_POINTS, TreatmentPlan


def minutes_after(at: float | datetime, time_zero: datetime | None) -> float:
    if isinstance(at, datetime):
        if time_zero is None:
            raise ValueError("absolute item times need time_zero")
        return (at - time_zero).total_seconds() / 60.0
    return float(at)


@dataclass(frozen=True)
class Timeline:
    """A plan's items as minutes after time zero, with repeating observation sets expanded."""

    times: dict[str, list[float]]
    fluids_ml: list[tuple[float, float]]
    reviews: list[tuple[float, str | None]]
    weight_kg: float | None
    horizon_min: float


def build_timeline(plan: TreatmentPlan, horizon_min: float) -> Timeline:
    times: dict[str, list[float]] = {}
    fluids: list[tuple[float, float]] = []
    reviews: list[tuple[float, str | None]] = []
    weights: list[tuple[float, float]] = []
    for item in plan.items:
        t = minutes_after(item.at, plan.time_zero)
        if item.action == "observation_set" and item.every_min is not None:
            # a validated plan holds at most MAX_PLAN_POINTS times (schemas.treatment.plan_points): every
            # 5 min or more, within the horizon; the count below only guards a plan built unvalidated
            k = 0
            while t + k * item.every_min <= horizon_min + 1e-9 and k < MAX_PLAN_POINTS:
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
    return Timeline(times, sorted(fluids), sorted(reviews, key=lambda r: r[0]), weight, horizon_min)


def first_time(values: list[float] | None) -> float | None:
    return values[0] if values else None


def fmt_min(minutes: float) -> str:
    """Relative to time zero, readable at any distance: "T+45 min", "T+2 d 4 h", "T-30 min"."""
    return f"T+{duration(minutes)}" if minutes >= 0 else f"T-{duration(minutes)}"
