"""The ward model: ordering, NEWS2 colour bands, bounded memory, dedupe, resolved alerts leave."""

from __future__ import annotations

import asyncio

from web_builders import alert, risk_score

from vigil.agents.web.feed import WardFeed
from vigil.agents.web.ward import WardModel, colour_band
from vigil.models.early_warning import news2_band
from vigil.schemas import topics
from vigil.schemas.alerts import AlertExplanation
from vigil.schemas.treatment import CareItemResult, TreatmentScore


def model(max_patients: int = 100) -> WardModel:
    return WardModel(b"k", max_patients)


def test_colour_bands_are_the_published_news2_bands() -> None:
    for total, single3, band in ((2, False, "low"), (3, True, "low-medium"), (5, False, "medium"), (8, True, "high")):
        assert colour_band({"total": total, "band": news2_band(total, single3), "single_parameter_3": single3}) == band
    assert colour_band(None) == "unknown"


def test_score_builds_trends_and_keeps_the_newest_hour() -> None:
    m = model()
    for hour, hr in ((1, 80.0), (2, 95.0), (3, 120.0)):
        m.apply(topics.SCORES, risk_score("p", hour, hour * 2, "low", hr=hr).model_dump_json().encode())
    m.apply(topics.SCORES, risk_score("p", 2, 0, "low", hr=1.0).model_dump_json().encode())  # late replay
    (row,) = m.snapshot()["patients"]
    assert row["hour"] == 3 and row["news2"]["total"] == 6
    assert row["trends"]["HR"] == [[1, 80.0], [2, 95.0], [3, 120.0]]
    assert row["trends"]["news2"][-1] == [3, 6] and row["risk"] == 0.2


def test_model_is_bounded_least_recently_updated_first() -> None:
    m = model(max_patients=3)
    for i in range(5):
        m.apply(topics.SCORES, risk_score(f"p{i}", 1, i, "low").model_dump_json().encode())
    assert len(m) == 3
    assert {r["label"] for r in m.snapshot()["patients"]} == {"p2", "p3", "p4"}


def test_alert_lifecycle_and_dedupe_on_transition_id() -> None:
    m = model()
    opened = alert("p", "open").model_dump_json().encode()
    assert m.apply(topics.ALERTS, opened) is not None
    assert m.apply(topics.ALERTS, opened) is None  # redelivered: ignored
    assert m.alert_target("a1")[0] == "p"
    acked = alert("p", "acknowledged", by="ann").model_copy(update={"explanation": AlertExplanation()})
    m.apply(topics.ALERTS, acked.model_dump_json().encode())
    (row,) = m.snapshot()["patients"]
    assert row["alerts"][0]["state"] == "acknowledged" and row["alerts"][0]["by"] == "ann"
    assert row["alerts"][0]["explanation"]["rule_breakdown"]  # kept from the open transition
    m.apply(topics.ALERTS, alert("p", "resolved").model_dump_json().encode())
    assert m.snapshot()["patients"][0]["alerts"] == [] and m.alert_target("a1") is None
    assert [t["state"] for t in m.snapshot()["recent"]] == ["resolved", "acknowledged", "open"]


def test_invalid_records_are_counted_not_raised() -> None:
    assert model().apply(topics.ALERTS, b"{not json") is None


def test_treatment_score_joins_the_row() -> None:
    m = model()
    score = TreatmentScore(
        patient_id="p",
        score=55.0,
        items=[
            CareItemResult.model_validate(
                {
                    "name": "antibiotics_within_1h",
                    "status": "missing",
                    "weight": 1.0,
                    "credit": 0.0,
                    "source": "SSC 2021",
                    "detail": "",
                }
            )
        ],
    )
    m.apply(topics.TREATMENT_SCORES, score.model_dump_json().encode())
    assert m.snapshot()["patients"][0]["treatment"]["score"] == 55.0


def test_sse_fanout_reaches_subscribers() -> None:
    from vigil.infra.settings import Settings

    async def run() -> dict:
        feed = WardFeed(Settings())
        feed.start(asyncio.get_running_loop())
        q = feed.subscribe()
        feed.ingest(topics.ALERTS, alert("p").model_dump_json().encode())
        message = await asyncio.wait_for(q.get(), 2)
        feed.unsubscribe(q)
        return message

    message = asyncio.run(run())
    assert message["transition"]["state"] == "open" and message["row"]["alerts"]
