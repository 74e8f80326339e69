"""Version 1 is the only version of an event and of an answer to an alert: a record that says
another (``2``, ``true``, ``"1"``) is refused as ``schema`` naming ``schema_version``, not read as if
it were version 1 (pydantic's ``Literal[1]`` reads ``true`` and ``1.0`` as 1; an ``int`` took any)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from vigil.schemas.alerts import AlertAck
from vigil.schemas.deadletter import Rejected
from vigil.schemas.events import PatientEvent
from vigil.schemas.normalize import decode_raw_event

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
EVENT = {
    "patient_id": "p-1",
    "observed_at": "2026-06-01T11:00:00Z",
    "kind": "vital",
    "code": "HR",
    "value": 80,
    "unit": "/min",
}
ANSWER = {"alert_id": "a1", "patient_id": "p1", "action": "acknowledge", "by": "rn", "at": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize("version", [2, 0, 99, True, "1", 1.0, None])
def test_an_event_of_another_version_is_a_schema_dead_letter(version: object) -> None:
    out = decode_raw_event(json.dumps({**EVENT, "schema_version": version}).encode(), NOW)
    assert isinstance(out, Rejected) and out.reason == "schema", out
    assert out.detail.startswith("schema_version: ")


@pytest.mark.parametrize("event", [{**EVENT, "schema_version": 1}, EVENT])
def test_version_1_or_none_is_read(event: dict[str, object]) -> None:
    out = decode_raw_event(json.dumps(event).encode(), NOW)
    assert isinstance(out, PatientEvent) and out.schema_version == 1


def test_the_published_event_schema_says_1() -> None:
    assert PatientEvent.model_json_schema()["properties"]["schema_version"]["const"] == 1


@pytest.mark.parametrize("version", [2, True, "1", 1.0])
def test_an_answer_of_another_version_is_refused(version: object) -> None:
    with pytest.raises(ValidationError) as caught:
        AlertAck.model_validate_json(json.dumps({**ANSWER, "schema_version": version}))
    assert [e["loc"] for e in caught.value.errors()] == [("schema_version",)]


def test_an_answer_may_say_version_1_and_vigils_own_answers_leave_it_out() -> None:
    """Read, never written: a worker of the release before forbids the field, and reads the answers the
    dashboard and the CLI publish during a rolling upgrade."""
    answer = AlertAck.model_validate_json(json.dumps({**ANSWER, "schema_version": 1}))
    assert answer.schema_version == 1 and "schema_version" not in json.loads(answer.model_dump_json())
    assert AlertAck.model_validate_json(json.dumps(ANSWER)).schema_version == 1
