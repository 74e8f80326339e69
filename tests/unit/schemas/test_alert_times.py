"""Alert and acknowledgement times are aware and published in UTC (schemas.times): a paging system's
naive time is refused (read in the worker's zone, a 15-minute snooze from ``01:10`` ran 5 h 15 min on
a worker with TZ=America/New_York), an offset is kept as the same instant in UTC, and a clock ahead of
the worker's by more than events may be (MAX_FUTURE_SKEW) is refused."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from tests.unit.models.test_alerting import POLICY, score
from vigil.models.alerting import PatientAlertState, on_ack, on_score
from vigil.schemas.alerts import Alert, AlertAck
from vigil.schemas.events import MAX_FUTURE_SKEW

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def ack_json(at: str, **more: Any) -> str:
    return json.dumps(
        {"alert_id": "a1", "patient_id": "p1", "action": "acknowledge", "by": "pager:js", "at": at, **more}
    )


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The worker's host zone: where a naive time would have been read."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("at", ["2025-01-01T01:10:00", "2025-01-01T01:10:00.5", "2025-01-01 01:10"])
def test_an_answer_without_a_timezone_is_refused(at: str) -> None:
    with pytest.raises(ValidationError) as refused:
        AlertAck.model_validate_json(ack_json(at))
    (error,) = refused.value.errors()
    assert error["loc"] == ("at",) and error["type"] == "timezone_required"
    assert "timezone" in error["msg"]


def test_a_naive_datetime_is_refused_from_python_too() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        AlertAck(alert_id="a1", patient_id="p1", action="resolve", by="x", at=datetime(2025, 1, 1, 1, 10))


@pytest.mark.parametrize("at", ["2025-01-01T03:10:00+02:00", "2024-12-31T20:10:00-05:00", "2025-01-01T01:10:00Z"])
def test_an_answers_offset_is_read_as_the_same_instant_in_utc(at: str) -> None:
    ack = AlertAck.model_validate_json(ack_json(at))
    assert ack.at == T0 + timedelta(hours=1, minutes=10) and ack.at.utcoffset() == timedelta(0)
    assert json.loads(ack.model_dump_json())["at"] == "2025-01-01T01:10:00Z"


def test_a_snooze_lasts_its_minutes_whatever_the_workers_zone(new_york: None) -> None:
    state = PatientAlertState()
    (opened,) = on_score(state, score(1, 6, "medium"), POLICY)
    sent = ack_json(
        "2025-01-01T01:10:00+00:00", alert_id=opened.alert_id, action="snooze", snooze_min=15, note="at bedside"
    )
    (snoozed,) = on_ack(state, AlertAck.model_validate_json(sent), POLICY)
    published = json.loads(snoozed.model_dump_json())
    assert published["at"] == "2025-01-01T01:10:00Z"
    assert published["snoozed_until"] == "2025-01-01T01:25:00Z"


def test_a_resolution_given_with_an_offset_is_published_in_utc() -> None:
    state = PatientAlertState()
    (opened,) = on_score(state, score(1, 6, "medium"), POLICY)
    sent = ack_json("2025-01-01T03:10:00+02:00", alert_id=opened.alert_id, action="resolve")
    (resolved,) = on_ack(state, AlertAck.model_validate_json(sent), POLICY)
    assert json.loads(resolved.model_dump_json())["at"] == "2025-01-01T01:10:00Z"  # was "+02:00"


def test_an_answer_from_a_clock_ahead_of_the_workers_is_refused() -> None:
    now = datetime.now(UTC)
    ahead = (now + MAX_FUTURE_SKEW + timedelta(minutes=5)).isoformat()
    with pytest.raises(ValidationError) as refused:
        AlertAck.model_validate_json(ack_json(ahead))
    assert refused.value.errors()[0]["type"] == "clock_skew"
    # within the skew events may have, and any time before now, it stands
    for at in (now + MAX_FUTURE_SKEW - timedelta(minutes=1), now - timedelta(days=30)):
        assert AlertAck.model_validate_json(ack_json(at.isoformat())).at == at


def alert(**times: Any) -> Alert:
    fields: dict[str, Any] = {
        "alert_id": "a1",
        "transition_id": "t1",
        "patient_id": "p1",
        "state": "acknowledged",
        "severity": "medium",
        "trigger": "news2_band:medium",
        "reason": "r",
        "at": T0,
        "hour": 1,
        **times,
    }
    return Alert(**fields)


@pytest.mark.parametrize("field", ["at", "opened_at", "snoozed_until"])
def test_an_alerts_times_are_read_naive_as_utc_and_published_in_utc(field: str) -> None:
    # a transition published before times were checked carried an acknowledgement's naive time as
    # it came: read back from the topic (the dashboard, alerts tail) as UTC, not refused (which hid
    # the acknowledgement); what Vigil publishes now is never naive
    naive = json.loads(alert(**{field: datetime(2025, 1, 1, 1)}).model_dump_json())[field]
    assert naive == "2025-01-01T01:00:00Z"
    plus_two = datetime(2025, 1, 1, 3, tzinfo=timezone(timedelta(hours=2)))
    assert json.loads(alert(**{field: plus_two}).model_dump_json())[field] == "2025-01-01T01:00:00Z"


def test_the_published_schemas_say_date_time() -> None:
    assert AlertAck.model_json_schema()["properties"]["at"]["format"] == "date-time"
    assert Alert.model_json_schema()["properties"]["at"]["format"] == "date-time"
