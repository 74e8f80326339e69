"""The ward model: ordering, NEWS2 colour bands, bounded memory, dedupe, resolved alerts leave."""

from __future__ import annotations

import asyncio

from web_builders import alert, risk_score

from vigil.agents.web.feed import WardFeed
from vigil.agents.web.views import band_of
from vigil.agents.web.ward import WardModel
from vigil.schemas import topics
from vigil.schemas.alerts import AlertExplanation
from vigil.schemas.treatment import CareItemResult, TreatmentScore


def model(max_patients: int = 100) -> WardModel:
    return WardModel(b"k", max_patients)


def test_bands_follow_rcp_news2_with_one_definition() -> None:
    assert band_of({"total": 2, "single_parameter_3": False}) == "low"
    assert band_of({"total": 3, "single_parameter_3": True}) == "low-medium"
    assert band_of({"total": 5}) == "medium"
    assert band_of({"total": 9, "single_parameter_3": True}) == "high"
    assert band_of(None) == "unknown"


def test_score_builds_trends_and_keeps_the_newest_hour() -> None:
    m = model()
    for hour, hr in ((1, 80.0), (2, 95.0), (3, 120.0)):
        m.apply(topics.SCORES, risk_score("p", hour, hour * 2, "low", hr=hr).model_dump_json().encode())
    m.apply(topics.SCORES, risk_score("p", 2, 0, "low", hr=1.0).model_dump_json().encode())  # late replay
    (row,) = m.snapshot()["patients"]
    assert row["hour"] == 3 and row["news2_total"] == 6
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
    assert row["alerts"][0]["features"]  # the explanation is kept from the open transition
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
        as_of_min=30.0,  # the streaming care score (a plan's answer has none)
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


def test_each_change_is_in_a_new_clients_state_or_in_its_queue_once() -> None:
    from vigil.infra.settings import Settings

    def drain(q: asyncio.Queue) -> list[str]:  # type: ignore[type-arg]
        return [m["row"]["label"] for m in (q.get_nowait() for _ in range(q.qsize()))]

    async def run() -> tuple[list[str], list[str], list[str]]:
        feed = WardFeed(Settings())
        feed.start(asyncio.get_running_loop())
        before = feed.subscribe()
        feed.ingest(topics.ALERTS, alert("p1").model_dump_json().encode())  # its delivery waits for the loop
        q, state = feed.subscribe_with_state()  # the page connects before the loop delivered p1
        await asyncio.sleep(0)
        feed.ingest(topics.ALERTS, alert("p2", alert_id="a2").model_dump_json().encode())
        await asyncio.sleep(0)
        return [r["label"] for r in state["patients"]], drain(q), drain(before)

    in_state, queued, before = asyncio.run(run())
    assert in_state == ["p1"] and queued == ["p2"]  # p1 in the state only: never lost, never twice
    assert before == ["p1", "p2"]


def test_alert_shows_what_it_opened_at_and_the_patient_now() -> None:
    from datetime import UTC, datetime

    m = model()
    opened = alert("p").model_copy(
        update={"opened_at": datetime(2026, 1, 1, 3, tzinfo=UTC), "opened_news2": 6, "opened_risk": 0.41}
    )
    m.apply(topics.ALERTS, opened.model_dump_json().encode())
    m.apply(topics.SCORES, risk_score("p", 5, 9, "high", hr=131.0, prob=0.62).model_dump_json().encode())
    (shown,) = m.snapshot()["patients"][0]["alerts"]
    assert shown["opened_text"] == "Opened 1 Jan 03:00 UTC at NEWS2 6, risk 41%"
    assert shown["now_text"].startswith("Now NEWS2 9 (high): RR 22 +2")
    assert "risk 62%" in shown["now_text"]
    assert shown["at_text"] == "1 Jan 03:00 UTC" and shown["short_id"] == "a1"


def test_sort_fields_for_the_ward_view() -> None:
    m = model()
    m.apply(topics.SCORES, risk_score("calm", 1, 1, "low", prob=0.01).model_dump_json().encode())
    m.apply(topics.ALERTS, alert("sick").model_dump_json().encode())
    rows = {r["label"]: r for r in m.snapshot()["patients"]}
    assert rows["sick"]["unacknowledged"] and rows["sick"]["last_alert_at"]
    assert not rows["calm"]["unacknowledged"] and rows["calm"]["last_alert_at"] is None
    assert rows["calm"]["risk_pct"] == "1.0%"
