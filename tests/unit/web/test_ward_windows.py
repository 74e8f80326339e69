"""A card shows the patient's current window and stay: a restarted hour index is the patient now, not
a late score; a stay's end read after the next stay's alert leaves that alert on the card, live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from web_builders import alert, risk_score

from vigil.agents.web.ward import WardModel, row_id_for
from vigil.schemas import topics
from vigil.schemas.stays import StayEnded

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def score(pid: str, hour: int, total: int, band: str, at_h: float) -> bytes:
    """A score at ``hour`` of its window, observed ``at_h`` hours after T0."""
    at = T0 + timedelta(hours=at_h)
    record = risk_score(pid, hour, total, band).model_copy(
        update={"observed_at": at, "scored_at": at, "score_id": f"s-{pid}-{at_h}"}
    )
    return record.model_dump_json().encode()


def opened(pid: str, alert_id: str, at_h: float, state: str = "open") -> bytes:
    at = T0 + timedelta(hours=at_h)
    record = alert(pid, state, severity="high", alert_id=alert_id).model_copy(update={"at": at, "opened_at": at})
    return record.model_dump_json().encode()


def ended(pid: str, at_h: float) -> bytes:
    at = T0 + timedelta(hours=at_h)
    record = StayEnded(patient_id=pid, ward="ICU-1", ended_at=at, through=at, event_id=f"d-{pid}", at=at)
    return record.model_dump_json().encode()


def test_a_restarted_window_is_the_patient_now_not_a_late_score() -> None:
    """The worker starts the hour index at 0 again after a 7-day gap or an expired Redis window, with
    no vigil.stays record: the card showed last week's hour 30 NEWS2 1 while the patient was NEWS2 9."""
    m = WardModel(b"k", 100)
    for hour in (29, 30):
        m.apply(topics.SCORES, score("p", hour, 1, "low", hour))
    day9 = 30 + 24 * 8
    message = m.apply(topics.SCORES, score("p", 0, 9, "high", day9))
    assert message is not None
    row = message["row"]
    assert (row["hour"], row["news2_total"], row["band"]) == (0, 9, "high")
    assert row["trends"]["news2"] == [[0, 9]]  # last week's hours share no axis with this window's
    m.apply(topics.SCORES, score("p", 1, 8, "high", day9 + 1))
    m.apply(topics.ALERTS, opened("p", "a9", day9 + 1))
    (card,) = m.snapshot()["patients"]
    assert card["hour"] == 1 and card["alerts"][0]["now_text"].startswith("Now NEWS2 8 (high)")
    patient = m.patient(row_id_for("p", b"k"))
    assert patient is not None and [h["hour"] for h in patient["history"]] == [0, 1]


def test_a_late_score_of_the_same_window_still_keeps_the_newest() -> None:
    m = WardModel(b"k", 100)
    m.apply(topics.SCORES, score("p", 5, 6, "medium", 5))
    m.apply(topics.SCORES, score("p", 4, 1, "low", 4))  # replayed: a lower hour, observed before
    (card,) = m.snapshot()["patients"]
    assert (card["hour"], card["news2_total"]) == (5, 6)


def test_the_next_stays_first_score_read_before_the_stay_end_shows_the_next_stay() -> None:
    """Backfill: the next stay's hour-0 score and its alert read before the old stay's end."""
    m = WardModel(b"k", 100)
    m.apply(topics.SCORES, score("p", 40, 2, "low", 40))
    m.apply(topics.SCORES, score("p", 0, 8, "high", 50))
    m.apply(topics.ALERTS, opened("p", "a2", 50))
    message = m.apply(topics.STAYS, ended("p", 45))
    assert message is not None and "left" not in message
    (card,) = m.snapshot()["patients"]
    assert (card["hour"], card["news2_total"]) == (0, 8) and [a["alert_id"] for a in card["alerts"]] == ["a2"]


def test_a_stay_end_read_after_the_next_stays_alert_keeps_that_alert_live() -> None:
    """Only the next stay's alert was read before the old stay's end (its scores after): the alert
    stays on a card, its later transitions show, and it can be acknowledged."""
    m = WardModel(b"k", 100)
    m.apply(topics.SCORES, score("p", 40, 2, "low", 40))
    m.apply(topics.ALERTS, opened("p", "a1", 41))  # the ended stay's
    m.apply(topics.ALERTS, opened("p", "a2", 50))  # the next stay's
    message = m.apply(topics.STAYS, ended("p", 45))
    assert message is not None and "left" not in message
    (card,) = m.snapshot()["patients"]
    assert [a["alert_id"] for a in card["alerts"]] == ["a2"] and m.alert_target("a1") is None
    assert card["news2_total"] is None  # the ended stay's score is not shown as the patient now
    assert m.alert_target("a2") is not None  # an acknowledgement finds it
    ack = m.apply(topics.ALERTS, opened("p", "a2", 51, state="escalated"))
    assert ack is not None and ack["row"]["alerts"][0]["state"] == "escalated"
    # the ended stay's late score stays out; the next stay's shows
    assert m.apply(topics.SCORES, score("p", 44, 2, "low", 44)) is None
    m.apply(topics.SCORES, score("p", 50, 9, "high", 51))
    (card,) = m.snapshot()["patients"]
    assert (card["news2_total"], [a["alert_id"] for a in card["alerts"]]) == (9, ["a2"])


def test_a_restarted_window_leaves_the_stays_care_score_behind() -> None:
    """Review of this stop's diff: the restart cleared the scores but not the care panel: a well
    patient's card said "give antibiotic now ... overdue by 8 d" from last week's care score."""
    from test_care_due_now import care_score

    m = WardModel(b"k", 100)
    for hour in (29, 30):
        m.apply(topics.SCORES, score("p", hour, 7, "high", hour))
    care = care_score().model_copy(update={"time_zero": T0 + timedelta(hours=29)})
    m.apply(topics.TREATMENT_SCORES, care.model_dump_json().encode())
    message = m.apply(topics.SCORES, score("p", 0, 1, "low", 30 + 24 * 8))
    assert message is not None and message["row"]["hour"] == 0 and message["row"]["treatment"] is None


def test_once_live_the_feed_lines_keep_the_order_the_stream_sent_them() -> None:
    """Sorted by their own times after the backfill, an escalation raised now from vital signs charted
    70 min late sat behind an hour of acknowledgements: on the stream, missing after a reload."""
    now = T0 + timedelta(hours=12)
    m = WardModel(b"k", 2000)
    m.live = True  # the feed's backfill is read
    for i in range(60):
        ack = alert(f"p{i}", "acknowledged", alert_id=f"a{i}", by="rn")
        m.apply(
            topics.ALERTS, ack.model_copy(update={"at": now - timedelta(minutes=60 - i)}).model_dump_json().encode()
        )
    late = alert("pX", "open", severity="high", alert_id="aX").model_copy(
        update={"at": now - timedelta(minutes=70), "opened_at": now - timedelta(minutes=70)}
    )
    m.apply(topics.ALERTS, late.model_dump_json().encode())
    assert "aX" in m.snapshot()["recent"][0]["transition_id"]  # the newest line, as the stream sent it


def test_a_card_carries_when_its_newest_observation_was_made_and_when_it_goes_stale() -> None:
    """A score of 9 h ago (a monitor unplugged, no discharge record) read "Now NEWS2 9 …" for good, with
    no age on the card: the page now counts "observed N h ago" from ``observed_at``, marks the card
    stale from ``stale_at`` (two hourly charting rounds later) and then says "Latest (its time)"."""
    m = WardModel(b"k", 100)
    m.apply(topics.SCORES, score("p", 3, 9, "high", 3))
    m.apply(topics.ALERTS, opened("p", "a1", 3))
    (card,) = m.snapshot()["patients"]
    assert card["observed_at"] == "2026-01-01T03:00+00:00" and card["stale_at"] == "2026-01-01T05:00+00:00"
    (shown,) = card["alerts"]
    body = shown["now_text"].removeprefix("Now ")
    assert body.startswith("NEWS2 9 (high)") and "risk 20%" in body
    assert shown["latest_text"] == f"Latest (1 Jan 03:00 UTC) {body}"
