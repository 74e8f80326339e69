"""A redelivered message (at-least-once: a crash after the Redis write, before Faust committed the
offsets) whose state was saved is skipped: its score or dead letter is out. In the current stay it
went through ``window.apply`` again: a backlog batch whose window had since moved 48 h past its first
events dead-lettered them as ``outside_window``, and a reading that a later one of its hour had
superseded was scored again as a new provisional score. A message after the saved position is new,
never skipped; and so is one at or before it that is newer than anything the window applied: the
offsets went back (a topic recreated, a site failed over to a replica cluster) under kept state, and
every patient Redis held stopped being scored, silently, until the offsets passed the old ones."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.unit.agents.test_drift_first_closings import T0
from tests.unit.agents.test_drift_first_closings import worker as worker  # noqa: F401 - the fixture
from vigil.agents import scoring
from vigil.models.window import PatientWindow
from vigil.schemas.events import PatientEvent


class Published:
    """What a delivery of a batch published: its scores and dead letters."""

    def __init__(self) -> None:
        self.scores: list[dict[str, Any]] = []
        self.dead: list[tuple[int, str]] = []

    async def send(self, topic: Any, key: Any, value: bytes) -> None:
        record = json.loads(value)
        if "score_id" in record:
            self.scores.append(record)

    async def dead_letter(self, event: Any, rejected: Any) -> None:
        self.dead.append((event.message.offset, rejected.reason))

    async def flush(self) -> None:
        pass


def heart_rate(offset: int, pid: str, minutes: int, value: float) -> tuple[Any, PatientEvent]:
    return message(offset, pid, minutes, "vital", "HR", value)


def message(offset: int, pid: str, minutes: int, kind: str, code: str, value: float) -> tuple[Any, PatientEvent]:
    event = PatientEvent(
        patient_id=pid,
        observed_at=T0 + timedelta(minutes=minutes),
        kind=kind,  # type: ignore[arg-type]
        code=code,
        value=value,
    )
    return SimpleNamespace(message=SimpleNamespace(partition=0, offset=offset, timestamp=None)), event


def skipped() -> float:
    return REGISTRY.get_sample_value("vigil_redeliveries_skipped_total") or 0.0


def deliver(batch: list[tuple[Any, PatientEvent]]) -> Published:
    out = Published()
    asyncio.run(scoring.score_events(batch, out))  # type: ignore[arg-type]
    return out


def test_a_redelivered_backlog_is_skipped_not_dead_lettered_outside_the_window(worker: SimpleNamespace) -> None:
    # a backlog after an outage: 52 hours of one patient in one batch, offsets 0-51
    backlog = [heart_rate(h, "p", h * 60 + 10, 80.0 + h % 5) for h in range(52)]
    first = deliver(backlog)
    assert first.dead == [] and sum(s["status"] == "provisional" for s in first.scores) == 1
    before = skipped()
    again = deliver(backlog)  # its state was saved; the offsets were not committed
    assert again.dead == []  # was: hours 0-3, now 48 h behind the window's newest, as outside_window
    assert again.scores == []  # every score of it is out already
    assert skipped() - before == 52  # counted, so that offsets gone back would show
    # redelivered with the messages that came after it: those are new, and scored
    new = heart_rate(52, "p", 51 * 60 + 40, 120.0)
    later = deliver([*backlog[-2:], new])
    assert later.dead == []
    [score] = [s for s in later.scores if s["status"] == "provisional"]
    assert score["event_ids"] == [new[1].event_id]
    assert score["vitals"]["HR"] == 120.0


def test_a_redelivered_superseded_reading_is_not_scored_again(worker: SimpleNamespace) -> None:
    # two readings of one hour, the later one first: the earlier is superseded, still scored once
    batch = [heart_rate(0, "q", 50, 90.0), heart_rate(1, "q", 10, 70.0)]
    first = deliver(batch)
    assert len(first.scores) == 1 and first.dead == []
    again = deliver(batch)
    assert again.scores == [] and again.dead == []  # was: a provisional score naming the superseded reading


def test_a_new_message_after_the_saved_position_is_never_skipped(worker: SimpleNamespace) -> None:
    deliver([heart_rate(0, "r", 10, 90.0)])
    twin = deliver([heart_rate(1, "r", 10, 90.0)])  # a new message with nothing new: a twin
    assert twin.dead == [(1, "duplicate")] and twin.scores == []
    superseded = deliver([heart_rate(2, "r", 5, 60.0)])  # new, superseded by the reading at :10
    assert len(superseded.scores) == 1 and superseded.dead == []


def test_after_the_offsets_went_back_new_events_are_scored(worker: SimpleNamespace) -> None:
    """The topic recreated (or a fail-over to a replica cluster) under kept Redis state: a window saved
    at offset 1,000,002 met the new topic's offsets 0, 1, 2. Each was skipped as redelivered, and the
    patient was never scored again until the offsets passed a million or the state expired."""
    deliver([heart_rate(1_000_000 + h, "s", h * 60 + 10, 80.0) for h in range(3)])
    before = skipped()
    new = [
        heart_rate(0, "s", 3 * 60 + 10, 125.0),  # an hour after the window's last
        message(1, "s", 3 * 60 + 20, "treatment", "antibiotic", 1.0),  # after its newest treatment (none)
        message(2, "s", 2 * 60 + 30, "vital", "Resp", 26.0),  # in its last hour, a variable it has not
    ]
    out = deliver(new)
    assert out.dead == []
    [score] = [s for s in out.scores if s["status"] == "provisional"]
    assert score["event_ids"] == [e.event_id for _, e in new]  # was: nothing scored, nothing said
    assert score["vitals"]["HR"] == 125.0
    assert skipped() == before
    # the new topic's messages redelivered in turn: taken, skipped
    again = deliver(new)
    assert again.scores == [] and again.dead == []
    assert skipped() - before == 3


def test_a_redelivered_event_no_newer_than_the_window_is_skipped_at_any_offset(worker: SimpleNamespace) -> None:
    deliver([heart_rate(1_000_000, "t", 10, 90.0), heart_rate(1_000_001, "t", 70, 95.0)])
    # at or before the saved position, and the window holds each at or after its time: taken
    out = deliver([heart_rate(5, "t", 10, 90.0), heart_rate(6, "t", 65, 99.0)])
    assert out.scores == [] and out.dead == []


def event(minutes: float, kind: str, code: str, value: float = 1.0) -> PatientEvent:
    return PatientEvent(
        patient_id="w",
        observed_at=T0 + timedelta(minutes=minutes),
        kind=kind,  # type: ignore[arg-type]
        code=code,
        value=value,
    )


@pytest.fixture
def window() -> PatientWindow:
    """A window of the previous release's blob (version 4) saved at (3, 1,000,000): hours 0-2 with a
    heart rate at :10 each, a GCS in hour 1, an age and an antibiotic at 1:30."""
    w = PatientWindow(position=(3, 1_000_000))
    for h in range(3):
        w.apply(event(h * 60 + 10, "vital", "HR", 80.0))
    w.apply(event(70, "assessment", "GCS", 14.0))
    w.apply(event(0, "demographic", "Age", 70.0))
    w.apply(event(90, "treatment", "antibiotic"))
    blob = w.to_bytes()
    assert blob[0] == 4  # the format the release before reads and writes: unchanged
    return PatientWindow.from_bytes(blob)


@pytest.mark.parametrize(
    ("what", "new"),
    [
        (event(3 * 60 + 5, "vital", "HR"), True),  # an hour after its last
        (event(2 * 60 + 30, "vital", "HR"), True),  # in its last hour, after the reading it holds
        (event(2 * 60 + 30, "vital", "Resp"), True),  # a variable its hour holds none of
        (event(2 * 60 + 10, "vital", "HR", 80.0), False),  # the reading it holds
        (event(2 * 60 + 5, "vital", "HR"), False),  # one the reading it holds superseded
        (event(-50 * 60, "vital", "HR"), False),  # before its 48 hours: no record of it
        (event(91, "treatment", "antibiotic"), True),  # a treatment it does not hold
        (event(60, "treatment", "blood_culture"), True),  # one before its newest: still not held
        (event(90, "treatment", "antibiotic"), False),  # the treatment it holds
        (event(2 * 60 + 1, "assessment", "GCS", 15.0), True),  # after the hour of the GCS it holds
        (event(75, "assessment", "GCS", 15.0), False),  # in that hour: kept by the hour
        (event(2 * 60, "assessment", "ACVPU", 0.0), True),  # a code it holds none of
        (event(0, "demographic", "Age", 70.0), False),
        (event(0, "demographic", "Gender", 1.0), True),
        (event(3 * 60, "encounter", "discharge"), True),  # no end held: a discharge cannot have been applied
        (event(3 * 60, "encounter", "cancel_discharge"), False),  # no end to resume: a cancel applied
    ],
    ids=lambda v: f"{v.code}@{v.observed_at:%H:%M}" if isinstance(v, PatientEvent) else str(v),
)
def test_a_message_at_or_before_the_position_is_new_when_the_window_cannot_have_applied_it(
    window: PatientWindow, what: PatientEvent, new: bool
) -> None:
    assert window.redelivered(3, 999_999, what) is not new
    assert window.redelivered(3, 1_000_000, what) is not new
    assert window.redelivered(3, 1_000_001, what) is False  # after the position: always new
    assert window.redelivered(4, 5, what) is False  # another partition's offsets: never compared


def test_at_or_before_an_end_the_window_holds_is_taken() -> None:
    ended = PatientWindow(position=(0, 100), ended_s=int((T0 + timedelta(hours=5)).timestamp()))
    assert ended.redelivered(0, 50, event(5 * 60, "encounter", "discharge"))  # the discharge that ended it
    assert ended.redelivered(0, 50, event(4 * 60, "vital", "HR"))  # the ended stay's
    assert not ended.redelivered(0, 50, event(6 * 60, "vital", "HR"))  # after its end: the next stay
    assert not ended.redelivered(0, 50, event(6 * 60, "encounter", "cancel_discharge"))  # a cancel of it
    begun = PatientWindow(position=(0, 100), after_s=ended.ended_s)  # the next stay, nothing applied yet
    assert begun.redelivered(0, 50, event(4 * 60, "treatment", "antibiotic"))
    assert not begun.redelivered(0, 50, event(6 * 60, "treatment", "antibiotic"))
