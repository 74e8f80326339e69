"""A redelivered message (at-least-once: a crash after the Redis write, before Faust committed the
offsets) of the current stay is applied again, which changes nothing the window holds: an exact copy
is skipped, counted, and a reading the window has no place for any more is skipped too (a backlog
batch whose window had since moved 48 h past its first events dead-lettered them as
``outside_window``). Applied, not skipped by its offset alone: offsets that went back (a topic
recreated, a fail-over to a replica cluster) under kept state are new events, and they are scored."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from prometheus_client import REGISTRY

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


def test_a_redelivered_superseded_reading_scores_the_hour_as_it_stands(worker: SimpleNamespace) -> None:
    # two readings of one hour, the later one first: the earlier is superseded, still scored once
    batch = [heart_rate(0, "q", 50, 90.0), heart_rate(1, "q", 10, 70.0)]
    first = deliver(batch)
    assert len(first.scores) == 1 and first.dead == []
    before = skipped()
    again = deliver(batch)
    # the copy of the reading the hour holds is skipped; the superseded one is valid data that changes
    # nothing: a provisional score of the hour as it stands (at-least-once), never a dead letter
    assert again.dead == [] and skipped() - before == 1
    [score] = again.scores
    assert score["vitals"]["HR"] == 90.0 and score["event_ids"] == [batch[1][1].event_id]


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


def test_the_age_beside_every_result_message_is_neither_a_twin_nor_scored_again(worker: SimpleNamespace) -> None:
    """HL7v2 and FHIR feeds send the patient's age and sex beside every result message: a second
    message in the hour made two ``duplicate`` dead letters, and a redelivered one a provisional score
    under a new id, which consumers could not dedupe."""
    first = deliver([message(0, "t", 10, "demographic", "Age", 71.0), heart_rate(1, "t", 10, 90.0)])
    assert first.dead == [] and len(first.scores) == 1
    age = message(3, "t", 40, "demographic", "Age", 71.0)  # after its message's results, as the codecs send it
    second = deliver([heart_rate(2, "t", 40, 95.0), age])
    assert second.dead == [] and len(second.scores) == 1  # no dead letter: named by the hour's score
    assert age[1].event_id in second.scores[0]["event_ids"]  # accounted for (docs/reliability.md)
    before = skipped()
    again = deliver([heart_rate(2, "t", 40, 95.0), message(3, "t", 40, "demographic", "Age", 71.0)])
    assert again.dead == [] and again.scores == [] and skipped() - before == 2  # redelivered: skipped, counted


def test_a_message_sent_again_moves_nothing_by_its_age(worker: SimpleNamespace) -> None:
    """Sent again later (a new offset, the same content), a message's measurements are ``duplicate``
    dead letters; its unchanged age published a score of its own and put the patient back on the
    message's old ward."""
    first = [message(0, "u", 10, "vital", "HR", 90.0), message(1, "u", 10, "demographic", "Age", 71.0)]
    first = [(e, ev.model_copy(update={"ward": "ICU-A"})) for e, ev in first]
    deliver(first)
    moved = heart_rate(2, "u", 70, 92.0)
    deliver([(moved[0], moved[1].model_copy(update={"ward": "ICU-B"}))])
    before = REGISTRY.get_sample_value("vigil_demographics_unchanged_total") or 0.0
    resent = [
        (SimpleNamespace(message=SimpleNamespace(partition=0, offset=3 + i, timestamp=None)), ev)
        for i, (_, ev) in enumerate(first)
    ]
    again = deliver(resent)
    assert again.dead == [(3, "duplicate")] and again.scores == []  # no score of the age alone
    assert (REGISTRY.get_sample_value("vigil_demographics_unchanged_total") or 0.0) - before == 1
    later = deliver([heart_rate(5, "u", 80, 93.0)])
    assert later.scores[0]["ward"] == "ICU-B"  # the resent message's ward moved nothing
