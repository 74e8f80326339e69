"""A Vigil JSON event with a key it does not know: the dead letter's detail named the key itself
(``Jane Doe MRN 4455: Extra inputs are not permitted``), and a key can be a patient's name or MRN.
The event path places its error as every refused record does (``error_location``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from vigil.schemas.deadletter import DeadLetter, Rejected, Source, error_location, invalid_record
from vigil.schemas.normalize import decode_raw_event

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
EVENT = {"patient_id": "p-1", "observed_at": "2026-06-01T11:00:00Z", "kind": "vital", "code": "HR", "value": 80}
PATIENT_KEYS = ["Jane Doe MRN 4455", "MRN4455", "\x1b]0;Jane Doe\x07"]


@pytest.mark.parametrize("key", PATIENT_KEYS)
def test_an_unknown_key_never_reaches_the_dead_letter(key: str) -> None:
    raw = json.dumps({**EVENT, key: 1}).encode()
    rejected = decode_raw_event(raw, NOW)
    assert isinstance(rejected, Rejected) and rejected.reason == "schema"
    assert rejected.detail == "(unexpected field): Extra inputs are not permitted"
    letter = DeadLetter.of(rejected.at(Source("vigil.events.raw", 0, 5, b"p-1", raw)), NOW)
    assert "Jane" not in letter.detail and "4455" not in letter.detail and "\\x1b" not in letter.detail


def test_the_event_paths_other_details_are_unchanged() -> None:
    rejected = decode_raw_event(json.dumps({**EVENT, "value": True}).encode(), NOW)
    assert isinstance(rejected, Rejected) and rejected.detail == "value: Input should be a valid number"
    rejected = decode_raw_event(b'{"patient_id": ', NOW)
    assert isinstance(rejected, Rejected) and rejected.reason == "invalid_json"
    assert rejected.detail.startswith(": Invalid JSON")


class Nested(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = 0


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inner: Nested


def test_one_location_step_for_events_and_records() -> None:
    """A nested unknown key keeps its path to the record that does not know it, nothing of its name."""
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate({"inner": {"Jane Doe": 1}})
    (error,) = caught.value.errors()
    assert error_location(error) == ("inner", "(unexpected field)")
    assert (
        invalid_record(caught.value, "plan").detail == "plan: inner.(unexpected field): Extra inputs are not permitted"
    )
