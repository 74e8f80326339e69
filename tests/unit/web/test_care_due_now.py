"""A care suggestion's "due in N min" counts from now, not from when the care was last judged: the
streaming care score is recomputed at most hourly, and an antibiotic overdue for hours read "in 25 min"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vigil.agents.web.views import row_json
from vigil.agents.web.ward import PatientRow
from vigil.models.treatment.view import care_view
from vigil.schemas.treatment import PlanSuggestion, TreatmentItem, TreatmentScore

T0 = datetime(2026, 1, 1, 8, tzinfo=UTC)


def care_score(as_of_min: float | None = 35.0) -> TreatmentScore:
    """Sepsis suspected at T0; judged 35 min later: the antibiotic is due at 60 min."""
    suggestion = PlanSuggestion(
        change="give antibiotic",
        kind="add",
        item=TreatmentItem(action="antibiotic", at=35.0),
        addresses="antibiotic",
        gain=50,
        score_after=100,
        at_min=35.0,
        at=T0 + timedelta(minutes=35),
        due_min=60.0,
        due=T0 + timedelta(minutes=60),
    )
    return TreatmentScore(
        patient_id="p",
        score=50,
        items_due=2,
        items_on_time=1,
        time_zero=T0,
        items=[],
        as_of_min=as_of_min,
        suggestions=[suggestion],
    )


def test_until_due_counts_from_the_time_the_card_is_written() -> None:
    row = PatientRow("r", "p", treatment=care_score())
    judged = row_json(row, UTC, now=T0 + timedelta(minutes=35))["treatment"]["suggestions"][0]
    assert (judged["until_due"], judged["overdue"]) == ("in 25 min", False)
    later = row_json(row, UTC, now=T0 + timedelta(hours=3, minutes=35))["treatment"]["suggestions"][0]
    assert (later["until_due"], later["overdue"]) == ("overdue by 2 h 35 min", True)
    # the due time as an instant, for the page to count at each render from its own clock
    assert later["due_at"] == "2026-01-01T09:00:00+00:00"
    assert row_json(row, UTC, now=T0)["treatment"]["as_of_at"] == "2026-01-01T08:35:00+00:00"


def test_never_counted_from_before_the_care_was_judged() -> None:
    view = care_view(care_score(), UTC, now=T0)  # a clock behind the worker's
    assert view["suggestions"][0]["until_due"] == "in 25 min"


def test_a_plans_due_times_count_from_its_time_zero() -> None:
    view = care_view(care_score(as_of_min=None), UTC, now=T0 + timedelta(days=3))
    suggestion = view["suggestions"][0]
    assert (suggestion["until_due"], suggestion["due_at"]) == ("in 1 h", None)
