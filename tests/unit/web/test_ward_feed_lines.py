"""The transitions feed and the header say what happened, in time order, and only of patients on the
ward: no empty card for a resolution, no plan's answer on a patient's card, a partial ward says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from web_builders import alert, risk_score

from vigil.agents.web.feed import LOADING_STATUS, WardFeed
from vigil.agents.web.ward import WardModel
from vigil.infra.settings import Settings
from vigil.schemas import topics
from vigil.schemas.treatment import TreatmentScore

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def transition(pid: str, state: str, alert_id: str, at_h: float, severity: str = "medium") -> bytes:
    at = T0 + timedelta(hours=at_h)
    record = alert(pid, state, severity=severity, alert_id=alert_id).model_copy(update={"at": at, "opened_at": at})
    return record.model_dump_json().encode()


def test_the_feed_keeps_the_newest_transitions_whatever_order_the_partitions_are_read_in() -> None:
    """The backfill reads one partition of vigil.alerts, then the next: the newest escalation (read
    first) was pushed out of the 50 lines by 60 older ones read after it."""
    m = WardModel(b"k", 2000)
    m.apply(topics.ALERTS, transition("p0", "escalated", "x0", 10 + 59 / 60, severity="high"))
    for i in range(60):
        m.apply(topics.ALERTS, transition(f"p{i + 1}", "open", f"y{i}", 8 + i / 30))
    recent = m.snapshot()["recent"]
    assert len(recent) == 50
    assert (recent[0]["label"], recent[0]["state"]) == ("p0", "escalated")
    times = [datetime.fromisoformat(t["at"]) for t in recent]
    assert times == sorted(times, reverse=True)


def test_a_resolution_of_a_patient_not_on_the_ward_makes_no_card() -> None:
    m = WardModel(b"k", 100)
    assert m.apply(topics.ALERTS, transition("q", "resolved", "a7", 5)) is None
    assert m.snapshot()["patients"] == []
    # of a patient on the ward, it still takes the alert off the card
    m.apply(topics.ALERTS, transition("p", "open", "a8", 5))
    message = m.apply(topics.ALERTS, transition("p", "resolved", "a8", 6))
    assert message is not None and message["row"]["alerts"] == [] and m.alert_target("a8") is None


def care(pid: str, score: float, **fields: object) -> bytes:
    record = TreatmentScore(patient_id=pid, score=score, items=[], time_zero=T0, **fields)  # type: ignore[arg-type]
    return record.model_dump_json().encode()


def test_a_plans_answer_is_not_the_patients_care() -> None:
    """vigil.treatment.scores also carries the answers to submitted plans (request_id, no as_of_min):
    what a plan would score, not the care the patient had."""
    m = WardModel(b"k", 100)
    m.apply(topics.SCORES, risk_score("p", 2, 6, "medium").model_dump_json().encode())
    m.apply(topics.TREATMENT_SCORES, care("p", 40.0, as_of_min=30.0))  # the patient's care
    assert m.apply(topics.TREATMENT_SCORES, care("p", 100.0, request_id="req-1", as_of_min=30.0)) is None
    assert m.apply(topics.TREATMENT_SCORES, care("p", 100.0)) is None  # a plan scored without a request id
    (card,) = m.snapshot()["patients"]
    assert card["treatment"]["score"] == 40.0
    assert m.apply(topics.TREATMENT_SCORES, care("nobody", 90.0, request_id="req-2")) is None
    assert [r["label"] for r in m.snapshot()["patients"]] == ["p"]


def test_the_header_says_the_ward_is_loading_while_the_backfill_is_read() -> None:
    feed = WardFeed(Settings())
    feed.caught_up = False  # as KafkaWardFeed during its start-up backfill
    feed.ingest(topics.SCORES, risk_score("p", 3, 2, "low").model_dump_json().encode())
    feed.set_status({"fleet": {"level": "critical", "text": "no worker scoring"}}, ["fleet"])
    during = feed.state()["ward_status"]
    assert during[0] == LOADING_STATUS and during[0]["text"] == "loading: not every patient shown yet"
    assert {"level": "critical", "text": "no worker scoring"} in during
    feed.backfill_done()
    assert LOADING_STATUS not in feed.state()["ward_status"]
    assert "server_now" in feed.state()  # the page's clock for "N min ago"
