"""A discharged patient leaves the ward view (vigil.stays); late records of the ended stay do not
bring the patient back, the next stay's do, and so does a cancel of the discharge; the patient page
and the stream say so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from web_builders import alert, risk_score, sign_in

from vigil.agents.web.ward import WardModel, row_id_for
from vigil.schemas import topics
from vigil.schemas.stays import StayEnded, StayResumed

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def left(pid: str, hours: float, resolved: str | None = "a1", by: str = "discharge") -> bytes:
    return (
        StayEnded(
            patient_id=pid,
            encounter="enc-1",
            ward="ICU-1",
            ended_at=T0 + timedelta(hours=hours),
            event_id=f"d-{pid}",
            ended_by=by,  # type: ignore[arg-type]
            resolved_alert=resolved,
            hours=5,
            at=T0 + timedelta(hours=hours, seconds=2),
        )
        .model_dump_json()
        .encode()
    )


def back(pid: str, hours: float, ended: float, by: str = "cancel_discharge") -> bytes:
    return (
        StayResumed(
            patient_id=pid,
            encounter="enc-1",
            ward="ICU-2",
            cancelled_at=T0 + timedelta(hours=hours),
            cancelled_end=T0 + timedelta(hours=ended),
            event_id=f"c-{pid}",
            cancelled_by=by,  # type: ignore[arg-type]
            hours=5,
            at=T0 + timedelta(hours=hours, seconds=2),
        )
        .model_dump_json()
        .encode()
    )


def test_a_discharged_patient_leaves_the_ward_with_a_line_in_the_feed() -> None:
    m = WardModel(b"k", 100)
    m.apply(topics.SCORES, risk_score("p", 2, 6, "medium").model_dump_json().encode())
    m.apply(topics.ALERTS, alert("p", "open").model_dump_json().encode())
    m.apply(topics.SCORES, risk_score("q", 2, 1, "low").model_dump_json().encode())
    message = m.apply(topics.STAYS, left("p", 4.5))
    assert message is not None and message["left"]["row_id"] == row_id_for("p", b"k")
    assert [r["label"] for r in m.snapshot()["patients"]] == ["q"] and m.alert_target("a1") is None
    line = m.snapshot()["recent"][0]
    assert line["state"] == "discharged" and line["label"] == "p" and line["ward"] == "ICU-1"
    assert "#a1" in line["reason"] and m.ended(row_id_for("p", b"k")) == (T0 + timedelta(hours=4.5), "discharge")
    assert m.apply(topics.STAYS, left("p", 4.5)) is None  # redelivered: one line, not two
    assert [t["state"] for t in m.snapshot()["recent"]].count("discharged") == 1


def test_late_records_of_the_ended_stay_do_not_bring_the_patient_back() -> None:
    m = WardModel(b"k", 100)
    m.apply(topics.SCORES, risk_score("p", 2, 6, "medium").model_dump_json().encode())
    m.apply(topics.STAYS, left("p", 4.5))
    # read after the stay's end from the other topics: its last score, its alert's resolution
    assert m.apply(topics.SCORES, risk_score("p", 4, 6, "medium").model_dump_json().encode()) is None
    resolved = alert("p", "resolved").model_copy(update={"at": T0 + timedelta(hours=9)})  # wall clock, later
    assert m.apply(topics.ALERTS, resolved.model_dump_json().encode()) is None
    assert m.snapshot()["patients"] == []
    # admitted again: the next stay's first score puts the patient back on the ward
    assert m.apply(topics.SCORES, risk_score("p", 7, 2, "low").model_dump_json().encode()) is not None
    assert [r["label"] for r in m.snapshot()["patients"]] == ["p"]
    # and a record of the ended stay read even later still does not touch the next stay's row
    assert m.apply(topics.SCORES, risk_score("p", 3, 9, "high").model_dump_json().encode()) is None
    assert m.snapshot()["patients"][0]["hour"] == 7


def test_a_stay_end_read_after_the_next_stays_records_keeps_the_next_stay() -> None:
    """The topics are read side by side: the next stay's score and alert may come before the end
    of the stay before it. The card stays, with the next stay's alert; only the old alert leaves."""
    m = WardModel(b"k", 100)
    m.apply(topics.SCORES, risk_score("p", 2, 6, "medium").model_dump_json().encode())
    m.apply(topics.ALERTS, alert("p", "open").model_dump_json().encode())  # a1, opened at 03:00
    m.apply(topics.SCORES, risk_score("p", 9, 7, "high").model_dump_json().encode())
    later = alert("p", "open", alert_id="a2").model_copy(update={"at": T0 + timedelta(hours=9)})
    m.apply(topics.ALERTS, later.model_dump_json().encode())
    message = m.apply(topics.STAYS, left("p", 4.5))
    assert message is not None and "left" not in message and message["transition"]["state"] == "discharged"
    (row,) = m.snapshot()["patients"]
    assert [a["alert_id"] for a in row["alerts"]] == ["a2"] and m.alert_target("a1") is None
    assert m.alert_target("a2") is not None
    escalated = later.model_copy(update={"state": "escalated", "transition_id": "a2-esc", "severity": "high"})
    assert m.apply(topics.ALERTS, escalated.model_dump_json().encode()) is not None  # still shown


def test_the_end_is_the_later_of_the_discharge_and_the_stays_last_observation() -> None:
    """A discharge time recorded before the stay's last vital signs (a monitor sending on): those
    scores are the ended stay's too, read late or not."""
    m = WardModel(b"k", 100)
    record = StayEnded.model_validate_json(left("p", 2.5)).model_copy(update={"through": T0 + timedelta(hours=3)})
    m.apply(topics.STAYS, record.model_dump_json().encode())
    assert m.apply(topics.SCORES, risk_score("p", 3, 6, "medium").model_dump_json().encode()) is None
    assert m.apply(topics.SCORES, risk_score("p", 4, 1, "low").model_dump_json().encode()) is not None


def test_a_stay_end_before_any_score_still_keeps_the_ended_stays_records_out() -> None:
    m = WardModel(b"k", 100)
    m.apply(topics.STAYS, left("p", 4.5, resolved=None))  # the stays topic read first
    assert m.apply(topics.SCORES, risk_score("p", 3, 6, "medium").model_dump_json().encode()) is None
    assert m.snapshot()["patients"] == [] and len(m.snapshot()["recent"]) == 1


def test_the_patient_page_says_the_patient_left(client, feed) -> None:
    sign_in(client, "ann")
    feed.ingest(topics.SCORES, risk_score("p", 2, 6, "medium").model_dump_json().encode())
    rid = row_id_for("p", feed.settings.log_hash_key.get_secret_value().encode())
    assert client.get(f"/api/patients/{rid}").status_code == 200
    feed.ingest(topics.STAYS, left("p", 4.5))
    gone = client.get(f"/api/patients/{rid}")
    assert gone.status_code == 404 and gone.json()["ended_at_text"] == "1 Jan 04:30 UTC"
    assert gone.json()["ended_by"] == "discharge"
    assert client.get("/api/state").json()["patients"] == []


def test_a_patient_moved_out_of_the_monitored_units_leaves_with_a_line_that_says_so(client, feed) -> None:
    sign_in(client, "ann")
    feed.ingest(topics.SCORES, risk_score("p", 2, 6, "medium").model_dump_json().encode())
    feed.ingest(topics.STAYS, left("p", 4.5, by="transfer_out"))
    line = client.get("/api/state").json()["recent"][0]
    assert line["state"] == "transferred" and line["reason"].startswith("moved out of the monitored units")
    rid = row_id_for("p", feed.settings.log_hash_key.get_secret_value().encode())
    assert client.get(f"/api/patients/{rid}").json()["ended_by"] == "transfer_out"
    feed.ingest(topics.STAYS, back("p", 5, 4.5, by="cancel_transfer"))  # ADT^A12: back in the unit
    line = client.get("/api/state").json()["recent"][0]
    assert line["state"] == "resumed" and line["reason"].startswith("transfer cancelled: the stay goes on")


def test_a_patient_whose_admission_was_cancelled_leaves_with_a_line_that_says_so(client, feed) -> None:
    sign_in(client, "ann")
    feed.ingest(topics.SCORES, risk_score("p", 2, 6, "medium").model_dump_json().encode())
    feed.ingest(topics.STAYS, left("p", 4.5, by="cancel_admit"))  # ADT^A11
    line = client.get("/api/state").json()["recent"][0]
    assert line["state"] == "discharged"
    assert (
        line["reason"] == "admission cancelled (entered in error, or not admitted): the stay ended; alert #a1 resolved"
    )
    rid = row_id_for("p", feed.settings.log_hash_key.get_secret_value().encode())
    assert client.get(f"/api/patients/{rid}").json()["ended_by"] == "cancel_admit"
    assert client.get("/api/state").json()["patients"] == []


def test_a_cancelled_discharge_brings_the_card_back_and_the_stays_records_count_again() -> None:
    m = WardModel(b"k", 100)
    m.apply(topics.SCORES, risk_score("p", 2, 6, "medium").model_dump_json().encode())
    m.apply(topics.STAYS, left("p", 4.5))
    # the score the cancel's batch published, read before the cancel: still the ended stay's
    assert m.apply(topics.SCORES, risk_score("p", 4, 6, "medium").model_dump_json().encode()) is None
    message = m.apply(topics.STAYS, back("p", 5, 4.5))
    assert message is not None and message["row"]["label"] == "p" and message["row"]["hour"] == 2
    assert message["transition"]["state"] == "resumed" and "discharge cancelled" in message["transition"]["reason"]
    assert [r["ward"] for r in m.snapshot()["patients"]] == ["ICU-2"] and m.ended(row_id_for("p", b"k")) is None
    assert m.apply(topics.STAYS, back("p", 5, 4.5)) is None  # redelivered: one line
    # the stay's next score, at an hour before the cancelled end, is shown (no longer an ended stay's)
    assert m.apply(topics.SCORES, risk_score("p", 4, 7, "medium").model_dump_json().encode()) is not None
    assert m.snapshot()["patients"][0]["hour"] == 4
    assert [t["state"] for t in m.snapshot()["recent"]] == ["resumed", "discharged"]  # newest first


def test_a_cancel_whose_card_is_gone_is_a_feed_line_until_the_next_score() -> None:
    m = WardModel(b"k", 100)
    message = m.apply(topics.STAYS, back("p", 5, 4.5))  # the end was never read (or long evicted)
    assert message is not None and "row" not in message and message["transition"]["label"] == "p"
    assert m.snapshot()["patients"] == []
    assert m.apply(topics.SCORES, risk_score("p", 4, 6, "medium").model_dump_json().encode()) is not None


def test_a_stays_record_of_an_unknown_kind_is_counted_not_fatal() -> None:
    m = WardModel(b"k", 100)
    assert m.apply(topics.STAYS, b'{"record": "stay_paused", "patient_id": "p"}') is None
    assert m.apply(topics.STAYS, b"not json") is None


def test_a_next_stays_card_read_before_the_cancel_gives_way_to_the_card_that_left() -> None:
    """The next stay's scores (hour 0 after the wrong discharge) and its alert may be read before the
    cancel: the card that left comes back with its history, and keeps the next stay's alert."""
    m = WardModel(b"k", 100)
    for hour in range(4):
        m.apply(topics.SCORES, risk_score("p", hour, 6, "medium").model_dump_json().encode())
    m.apply(topics.STAYS, left("p", 4.5))
    nxt = risk_score("p", 0, 7, "medium").model_copy(update={"observed_at": T0 + timedelta(hours=5)})
    assert m.apply(topics.SCORES, nxt.model_dump_json().encode()) is not None  # a next stay, as it seemed
    opened = alert("p", "open").model_copy(update={"alert_id": "a2", "at": T0 + timedelta(hours=5)})
    m.apply(topics.ALERTS, opened.model_dump_json().encode())
    message = m.apply(topics.STAYS, back("p", 6, 4.5))
    assert message is not None and message["row"]["hour"] == 3  # the card as it left, not hour 0
    patient = m.patient(row_id_for("p", b"k"))
    assert patient is not None and len(patient["history"]) == 4
    assert m.alert_target("a2") is not None  # the next stay's alert stays with the resumed card
