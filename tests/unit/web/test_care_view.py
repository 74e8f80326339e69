"""`vigil plan score` and the dashboard show the same care numbers (issue 14): both render
models.treatment.view.care_view, and this test holds them equal on the example plans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vigil.agents.web.feed import WardFeed
from vigil.agents.web.views import row_json
from vigil.agents.web.ward import PatientRow
from vigil.cli.plan import register
from vigil.infra.settings import Settings
from vigil.models.treatment import score_patient_care, score_plan
from vigil.models.treatment.view import care_view
from vigil.schemas import topics
from vigil.schemas.display import ward_zone
from vigil.schemas.treatment import TreatmentPlan

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "plans"
ZONE = "Europe/Berlin"


def _cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.callback()
    def _root() -> None:
        pass

    return app


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_cli_and_dashboard_show_the_same_care_view(path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VIGIL_WARD_TIMEZONE", ZONE)
    from vigil.infra.settings import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(_cli(), ["plan", "score", str(path), "--json"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    cli_view = json.loads(result.output.strip().splitlines()[-1])["view"]

    # the dashboard renders a card's care score with the same view, in the ward's zone
    plan = TreatmentPlan.model_validate_json(path.read_bytes())
    card = row_json(PatientRow("r", plan.patient_id or "p", treatment=score_plan(plan)), ward_zone(ZONE))
    assert card["treatment"] == cli_view
    # the plan's answer on vigil.treatment.scores is what the plan would score, not the patient's care:
    # the ward shows no card for it
    feed = WardFeed(Settings(ward_timezone=ZONE))
    feed.ingest(topics.TREATMENT_SCORES, score_plan(plan).model_dump_json().encode())
    assert feed.model.snapshot()["patients"] == []
    # the numbers a nurse reads: the score, points per suggestion, never a total above 100
    for s in cli_view["suggestions"]:
        assert 0 < s["points"] <= 100 and s["score_after"] <= 100
        assert s["at"].endswith(("CET", "CEST"))  # clock times in the ward's zone


def test_suggestions_are_never_in_the_past_and_never_add_past_100() -> None:
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2025, 1, 1, 8, tzinfo=UTC)
    state = {"weight_kg": 70, "lactate_mmol_l": 4.5, "map_mmhg": 58, "sbp_mmhg": 84, "suspected_sepsis": True}
    state |= {"news2_total": 9, "news2_band": "high"}
    # observations every 4 h since before time zero: the old "Observe every 15 min from -450 min"
    items = [{"action": "observation_set", "at": t0 - timedelta(minutes=450), "every_min": 240}]
    now = t0 + timedelta(minutes=20)
    result = score_patient_care(state, items, time_zero=t0, now=now, patient_id="p")
    assert result.suggestions
    assert all(s.at is not None and s.at >= now for s in result.suggestions)
    assert all(s.kind == "add" for s in result.suggestions)  # past items are history, not moved
    base = result.projected_score
    assert base is not None and base + sum(s.gain for s in result.suggestions) <= 100.0 + 1e-9
    view = care_view(result, ward_zone("UTC"))
    assert view["projected"] and view["suggestions"][0]["until_due"].startswith(("in ", "overdue by "))


def test_not_applicable_has_no_score_and_no_suggestions() -> None:
    state = {"suspected_sepsis": False, "news2_total": 0}
    result = score_patient_care(state, [], time_zero=None, now=30.0, patient_id="p")
    view = care_view(result)
    assert (result.score, result.suggestions, view["status"]) == (None, [], "not_applicable")
    assert "not applicable" in view["headline"]
