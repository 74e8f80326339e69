"""The care score as people read it: one view for the dashboard and ``vigil plan score`` (pure).

Both surfaces render ``care_view(score, zone)`` and nothing else, so they show the same numbers
(tests/unit/web/test_care_view.py holds them equal on the example plans). Times are clock times
in the ward's zone; "until due" counts from now (streaming) or from time zero (a plan).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from vigil.models.treatment.guidelines import ITEM_LABELS
from vigil.models.treatment.timeline import fmt_min
from vigil.schemas.display import clock, until
from vigil.schemas.treatment import PlanSuggestion, TreatmentScore

MAX_GAPS = 3


def _when(at: datetime | None, minutes: float | None, zone: tzinfo) -> str:
    if at is not None:
        return clock(at, zone)
    return "–" if minutes is None else fmt_min(minutes)


def headline(score: TreatmentScore) -> str:
    if score.status == "not_applicable":
        return "Care vs guidelines: not applicable (no sepsis suspected, NEWS2 low)"
    if score.status == "nothing_due" or score.score is None:
        return "Care vs guidelines: nothing due yet"
    return (
        f"Care vs guidelines: {score.score:g} / 100 ({score.items_on_time} of {score.items_due} due items done on time)"
    )


def suggestion_view(s: PlanSuggestion, reference_min: float, zone: tzinfo, streaming: bool = False) -> dict[str, Any]:
    at = _when(s.at, s.at_min, zone)
    planned = _when(s.from_at, s.from_min, zone)
    if s.kind == "move_earlier":
        action, text = f"{s.change} from {planned}", f"{s.change} from {planned} to {at}"
    elif s.kind == "adjust_dose":
        action = text = f"{s.change} (planned {planned})"
    elif streaming and s.at_min is not None and s.at_min == reference_min:
        action, text = s.change, f"{s.change} now ({at})"  # streaming: the earliest time is now
    else:
        action, text = s.change, f"{s.change} at {at}"
    due = _when(s.due, s.due_min, zone)
    until_due = until(s.due_min - reference_min) if s.due_min is not None else ""
    if s.due_min is not None:
        text += f" (due {due}, {until_due})"
    text += f": +{s.gain:g} points, {s.score_after:g} / 100 after"
    return {
        "item": s.addresses,
        "item_label": ITEM_LABELS.get(s.addresses, s.addresses),
        "action": action,
        "at": at,
        "now": streaming and s.at_min is not None and s.at_min == reference_min,
        "due": due,
        "until_due": until_due,
        "overdue": s.due_min is not None and s.due_min < reference_min,
        "points": s.gain,
        "score_after": s.score_after,
        "text": text,
    }


def care_view(score: TreatmentScore, zone: tzinfo = UTC) -> dict[str, Any]:
    """Headline, the gaps (late or missing items), the projection and the suggestions, in words."""
    reference = score.as_of_min if score.as_of_min is not None else 0.0
    as_of = None
    projected = None
    if score.as_of_min is not None and score.time_zero is not None:
        as_of = clock(score.time_zero + timedelta(minutes=score.as_of_min), zone)
    if score.as_of_min is not None and score.projected_score is not None and score.projected_score != score.score:
        projected = f"If nothing more is done: {score.projected_score:g} / 100 once the pending items fall due"
    gaps = [
        {"item": r.name, "item_label": ITEM_LABELS.get(r.name, r.name), "status": r.status, "detail": r.detail}
        for r in score.items
        if r.status in ("missing", "late")
    ]
    return {
        "status": score.status,
        "headline": headline(score),
        "score": score.score,
        "items_due": score.items_due,
        "items_on_time": score.items_on_time,
        "pathways": list(score.pathways),
        "as_of": as_of,
        "projected": projected,
        "gaps": gaps[:MAX_GAPS],
        "suggestions": [suggestion_view(s, reference, zone, score.as_of_min is not None) for s in score.suggestions],
    }
