"""The care score as people read it: one view for the dashboard and ``vigil plan score`` (pure).

Both surfaces render ``care_view(score, zone)`` and nothing else, so they show the same numbers
(tests/unit/web/test_care_view.py holds them equal on the example plans). Times are clock times
in the ward's zone; "until due" counts from now (streaming) or from time zero (a plan).

A streaming care score is recomputed at most hourly, so "until due" is counted from the ``now`` the
view is written at (not from the score's ``as_of_min``: an antibiotic overdue for hours read "in 25
min"), and each suggestion carries its due time as an instant (``due_at``) for the page to count
from its own clock at every render.
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


def _aware(at: datetime) -> datetime:
    """A time without a zone is UTC (the stream's times are)."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _instant(at: datetime | None) -> str | None:
    """An instant for the page's clock: ISO 8601 in UTC, to the second."""
    return None if at is None else _aware(at).astimezone(UTC).isoformat(timespec="seconds")


def _due_at(s: PlanSuggestion, time_zero: datetime | None) -> datetime | None:
    """The instant a suggestion's item falls (fell) due."""
    if s.due is not None:
        return s.due
    if s.due_min is not None and time_zero is not None:
        return time_zero + timedelta(minutes=s.due_min)
    return None


def suggestion_view(
    s: PlanSuggestion,
    reference_min: float,
    zone: tzinfo,
    streaming: bool = False,
    due_from_min: float | None = None,
    time_zero: datetime | None = None,
) -> dict[str, Any]:
    """One suggestion in words. ``reference_min`` is when the care was judged (a suggestion at it is
    "now"); ``due_from_min`` (default ``reference_min``) is the moment "until due" counts from.
    Streaming, ``due_at`` is the due time as an instant (ISO 8601, UTC) for the page's own count."""
    due_from = reference_min if due_from_min is None else due_from_min
    due_at = _due_at(s, time_zero) if streaming else None
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
    until_due = until(s.due_min - due_from) if s.due_min is not None else ""
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
        "overdue": s.due_min is not None and s.due_min < due_from,
        "due_at": _instant(due_at),
        "points": s.gain,
        "score_after": s.score_after,
        "text": text,
    }


def care_view(score: TreatmentScore, zone: tzinfo = UTC, now: datetime | None = None) -> dict[str, Any]:
    """Headline, the gaps (late or missing items), the projection and the suggestions, in words.
    Streaming, "until due" counts from ``now`` (the time the view is written at; never from before
    the care was judged); a plan's counts from its time zero."""
    streaming = score.as_of_min is not None
    reference = score.as_of_min if score.as_of_min is not None else 0.0
    due_from = reference
    as_of = as_of_at = None
    projected = None
    if score.as_of_min is not None and score.time_zero is not None:
        as_of_at = score.time_zero + timedelta(minutes=score.as_of_min)
        as_of = clock(as_of_at, zone)
        if now is not None:
            due_from = max(reference, (_aware(now) - _aware(score.time_zero)).total_seconds() / 60.0)
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
        "as_of_at": _instant(as_of_at),
        "projected": projected,
        "gaps": gaps[:MAX_GAPS],
        "suggestions": [
            suggestion_view(s, reference, zone, streaming, due_from, score.time_zero) for s in score.suggestions
        ],
    }
