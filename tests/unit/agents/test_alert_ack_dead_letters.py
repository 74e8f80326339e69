"""A refused answer's dead letter says why: the field and pydantic's rule, as docs/integration.md
promises ("times must carry a timezone", "at is more than 15 minutes ahead"); every answer said "not
a valid record for this topic". Never what was sent: an answer holds a patient id, a clinician's name
and a note."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from vigil.agents import alert
from vigil.schemas import topics
from vigil.schemas.alerts import AlertAck
from vigil.schemas.deadletter import Rejected

PHI = "Jane-Doe-MRN-4455"


def answer(**changes: object) -> dict[str, Any]:
    sent = {
        "alert_id": "a1",
        "patient_id": PHI,
        "action": "acknowledge",
        "by": "pager:jsmith",
        "at": datetime.now(UTC).isoformat(),
    }
    return {**sent, **changes}


class Capture:
    def __init__(self) -> None:
        self.rejected: list[Rejected] = []
        self.audited: list[bytes] = []

    async def send(self, topic: Any, key: Any, value: bytes) -> None:
        self.audited.append(value)

    async def dead_letter(self, event: Any, rejected: Rejected) -> None:
        self.rejected.append(rejected)


def handled(monkeypatch: pytest.MonkeyPatch, *answers: dict[str, Any] | bytes) -> tuple[Capture, list[AlertAck]]:
    applied: list[AlertAck] = []

    async def ack_batch(acks: list[AlertAck], publisher: Any) -> list[Any]:
        applied.extend(acks)
        return []

    monkeypatch.setattr(alert, "ack_batch", ack_batch)
    events = [
        SimpleNamespace(
            message=SimpleNamespace(
                topic=topics.ALERT_ACKS,
                partition=0,
                offset=n,
                key=PHI.encode(),
                value=a if isinstance(a, bytes) else json.dumps(a).encode(),
            )
        )
        for n, a in enumerate(answers)
    ]
    publisher = Capture()
    asyncio.run(alert.ack_events(events, publisher))  # type: ignore[arg-type]
    return publisher, applied


def test_an_answer_without_a_timezone_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    publisher, applied = handled(monkeypatch, answer(at="2026-01-01T03:04:05"))
    (rejected,) = publisher.rejected
    assert rejected.reason == "schema" and applied == []
    assert rejected.detail.startswith("acknowledgement: at: times must carry a timezone"), rejected.detail


def test_an_answer_from_a_clock_ahead_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    ahead = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    (rejected,) = handled(monkeypatch, answer(at=ahead))[0].rejected
    assert rejected.detail.startswith("acknowledgement: at: at is more than 15 minutes ahead"), rejected.detail


@pytest.mark.parametrize(
    ("sent", "where"),
    [
        (answer(action="silence"), "action"),
        (answer(by=""), "by"),
        (answer(action="snooze", note=f"seen {PHI}"), ""),  # the snooze's rule: no field of its own
        (answer(snooze_min=30, note=f"{PHI} seen"), ""),
        (answer(patient_id=f"{PHI}\u202e"), "patient_id"),
        (answer(note=f"{PHI}\x1b[2J"), "note"),
        (answer(schema_version=2), "schema_version"),
        ({k: v for k, v in answer().items() if k != "by"}, "by"),
    ],
)
def test_the_detail_names_the_field_never_the_value(monkeypatch: pytest.MonkeyPatch, sent: Any, where: str) -> None:
    (rejected,) = handled(monkeypatch, sent)[0].rejected
    assert rejected.reason == "schema"
    assert rejected.detail.startswith(f"acknowledgement: {where}: " if where else "acknowledgement: Value error, ")
    assert PHI not in rejected.detail and "jsmith" not in rejected.detail


def test_an_unknown_key_is_not_in_the_detail(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key the answer does not know is the sender's text: a patient's name at worst."""
    (rejected,) = handled(monkeypatch, answer(**{PHI: "x"}))[0].rejected
    assert rejected.detail == "acknowledgement: (unexpected field): Extra inputs are not permitted"


def test_the_detail_counts_the_other_errors_and_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    (rejected,) = handled(monkeypatch, answer(action="x", by="", at="soon"))[0].rejected
    assert rejected.detail.endswith("(and 2 more)") and len(rejected.detail) <= 300


def test_bytes_that_are_not_json_are_a_schema_dead_letter_naming_no_content(monkeypatch: pytest.MonkeyPatch) -> None:
    (rejected,) = handled(monkeypatch, f'{{"patient_id": "{PHI}"'.encode())[0].rejected
    assert rejected.reason == "schema" and rejected.detail.startswith("acknowledgement: Invalid JSON")
    assert PHI not in rejected.detail


def test_an_answer_carrying_the_alerts_schema_version_is_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    """An integrator who copied the alert's ``schema_version`` into its answers had every one dead-lettered."""
    publisher, applied = handled(monkeypatch, answer(schema_version=1), answer())
    assert publisher.rejected == [] and [a.schema_version for a in applied] == [1, 1]
    assert len(publisher.audited) == 2


def test_an_answer_with_a_null_schema_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The published JSON Schema said null was allowed; the contract says absent or 1."""
    (rejected,) = handled(monkeypatch, answer(schema_version=None))[0].rejected
    assert rejected.reason == "schema" and rejected.detail.startswith("acknowledgement: schema_version: ")


@pytest.mark.parametrize(
    "sent",
    [
        answer(by="Mohammad\u200creza", note="seen by \U0001f469\u200d\u2695\ufe0f"),
        answer(note="\u05e0\u05d1\u05d3\u05e7\u200f 10:30"),
        answer(note="BP\t90/60\r\nfluids running", action="snooze", snooze_min=30),
        answer(note="hypo\u00adtension"),
    ],
)
def test_a_clinicians_answer_is_applied_not_dead_lettered(monkeypatch: pytest.MonkeyPatch, sent: Any) -> None:
    """/tmp/hunt-diffB/ack_notes.py: each was dead-lettered, and the alert paged again."""
    publisher, applied = handled(monkeypatch, sent)
    assert publisher.rejected == [] and len(applied) == 1
