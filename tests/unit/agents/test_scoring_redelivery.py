"""A redelivered message (at-least-once: a crash after the Redis write, before Faust committed the
offsets) whose state was saved is skipped: its score or dead letter is out. In the current stay it
went through ``window.apply`` again: a backlog batch whose window had since moved 48 h past its first
events dead-lettered them as ``outside_window``, and a reading that a later one of its hour had
superseded was scored again as a new provisional score. A message after the saved position is new,
never skipped."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from tests.unit.agents.test_drift_first_closings import T0
from tests.unit.agents.test_drift_first_closings import worker as worker  # noqa: F401 - the fixture
from vigil.agents import scoring
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
    event = PatientEvent(
        patient_id=pid, observed_at=T0 + timedelta(minutes=minutes), kind="vital", code="HR", value=value
    )
    return SimpleNamespace(message=SimpleNamespace(partition=0, offset=offset, timestamp=None)), event


def deliver(batch: list[tuple[Any, PatientEvent]]) -> Published:
    out = Published()
    asyncio.run(scoring.score_events(batch, out))  # type: ignore[arg-type]
    return out


def test_a_redelivered_backlog_is_skipped_not_dead_lettered_outside_the_window(worker: SimpleNamespace) -> None:
    # a backlog after an outage: 52 hours of one patient in one batch, offsets 0-51
    backlog = [heart_rate(h, "p", h * 60 + 10, 80.0 + h % 5) for h in range(52)]
    first = deliver(backlog)
    assert first.dead == [] and sum(s["status"] == "provisional" for s in first.scores) == 1
    again = deliver(backlog)  # its state was saved; the offsets were not committed
    assert again.dead == []  # was: hours 0-3, now 48 h behind the window's newest, as outside_window
    assert again.scores == []  # every score of it is out already
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
