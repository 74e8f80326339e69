"""Which writer's state stands when two workers write one patient in a rebalance (``save_states``):
the window by its stream position (a newer release's blob, which this worker cannot read, is ahead),
the alert lifecycle by what the batch read (an answer the new owner applied since stays). Over a
small WATCH/MULTI/EXEC stand-in for Redis: the rules, not the server (tests/integration/
test_scoring_state.py has them on the real one)."""

from __future__ import annotations

import asyncio
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.exceptions import WatchError

from vigil.infra import redis as store_module
from vigil.infra.redis import PACKED, AnsweredMeanwhile, PatientStore, alert_key, pack_state, unpack_state, window_key
from vigil.models.alerting import ActiveAlert, PatientAlertState, on_ack
from vigil.models.window import NewerTreatmentTable, PatientWindow
from vigil.schemas.alerts import AlertAck
from vigil.schemas.events import PatientEvent

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
PID = "p-superseded"


class _Redis:
    """Keys, sets and a write count per key, which a watching transaction checks at its EXEC."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.sets: dict[str, set[str]] = {}
        self.writes: dict[str, int] = {}

    def put(self, key: str, value: bytes) -> None:
        self.data[key] = value
        self.writes[key] = self.writes.get(key, 0) + 1

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        return [self.data.get(k) for k in keys]

    def pipeline(self, transaction: bool = True) -> _Transaction:
        return _Transaction(self)


class _Transaction:
    def __init__(self, redis: _Redis) -> None:
        self.redis = redis
        self.watched: dict[str, int] = {}
        self.queued: list[tuple[str, tuple[Any, ...]]] = []

    async def __aenter__(self) -> _Transaction:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def watch(self, *keys: str) -> None:
        self.watched = {k: self.redis.writes.get(k, 0) for k in keys}

    async def unwatch(self) -> None:
        self.watched = {}

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        return await self.redis.mget(keys)

    async def exists(self, key: str) -> int:
        return int(key in self.redis.data)

    def multi(self) -> None:
        return None

    def __getattr__(self, command: str) -> Any:  # SET, SADD, SREM, DEL... queued in the MULTI
        return lambda *args, **kwargs: self.queued.append((command, args))

    async def execute(self) -> list[bool]:
        if any(self.redis.writes.get(k, 0) != n for k, n in self.watched.items()):
            raise WatchError("Watched variable changed.")
        for command, args in self.queued:
            if command == "set":
                self.redis.put(args[0], args[1])
            elif command == "sadd":
                self.redis.sets.setdefault(args[0], set()).update(args[1:])
            elif command == "srem":
                self.redis.sets.setdefault(args[0], set()).difference_update(args[1:])
            else:
                raise AssertionError(f"{command} is not expected here")
        return [True]


def hr(minutes: float, value: float) -> PatientEvent:
    at = T0 + timedelta(minutes=minutes)
    return PatientEvent(patient_id=PID, observed_at=at, kind="vital", code="HR", value=value)


def stay(offset: int, *events: PatientEvent) -> PatientWindow:
    """A window of ``events``, its stream position at ``offset`` of partition 0."""
    window = PatientWindow()
    for event in events:
        window.apply(event)
    window.advance(0, offset)
    return window


OPEN = PatientAlertState(
    patient_id=PID, active=ActiveAlert("a1", "open", "high", "news2", T0.timestamp(), 0), partition=0
)


def stored(redis: _Redis, window: PatientWindow, alert: PatientAlertState) -> PatientStore:
    redis.put(window_key(PID), pack_state(window.to_bytes()))
    redis.put(alert_key(PID), alert.to_bytes())
    return PatientStore(redis, ttl_s=3600)


async def acknowledge(store: PatientStore, by: str) -> list[str]:
    """What the alert agent does with a clinician's acknowledgement (``agents.alert.ack_batch``)."""
    [blob] = await store.load_blobs([alert_key(PID)])
    state = PatientAlertState.from_bytes(blob)
    ack = AlertAck(alert_id="a1", patient_id=PID, action="acknowledge", by=by, at=datetime.now(UTC))
    assert [t.state for t in on_ack(state, ack)] == ["acknowledged"]
    return await store.save_alerts_if_unchanged({alert_key(PID): (blob, state)})


def test_the_old_owners_batch_leaves_the_acknowledgement_the_new_owner_applied() -> None:
    redis = _Redis()
    store = stored(redis, stay(1, hr(0, 120)), OPEN)

    async def main() -> list[str]:
        old_owner = (await store.load_states([PID]))[PID]
        old_owner.window.apply(hr(20, 118))  # its batch: the next message, uncommitted
        old_owner.window.advance(0, 2)
        assert await acknowledge(store, "rn-new-owner") == []  # the new owner, meanwhile
        return await store.save_states({PID: old_owner})

    with pytest.raises(AnsweredMeanwhile):  # nothing written: the batch again, on the answer
        asyncio.run(main())
    alert = PatientAlertState.from_bytes(redis.data[alert_key(PID)])
    assert alert.active is not None and alert.active.state == "acknowledged" and alert.active.acked_by == "rn-new-owner"
    assert PatientWindow.from_bytes(unpack_state(redis.data[window_key(PID)])).position == (0, 1)


def test_a_batch_answered_meanwhile_is_applied_again_to_the_answer() -> None:
    """The other way round (an ack applied by the old owner, or by a worker that an ack keyed by
    something other than the patient reached) looks the same: the batch is the new owner's, its
    offsets committed. Kept as the answer left it, its discharge's resolution was lost (a snoozed
    alert of a patient gone paged again); written over, the answer was. Run again on the answered
    lifecycle, both stand."""
    redis = _Redis()
    store = stored(redis, stay(1, hr(0, 120)), OPEN)

    async def batch(answer: bool) -> list[str]:
        state = (await store.load_states([PID]))[PID]
        state.window.apply(hr(20, 118))
        state.window.advance(0, 2)
        state.alert.closed_news2 = 3  # what its batch changed in the lifecycle it read
        if answer:
            assert await acknowledge(store, "rn-elsewhere") == []
        return await store.save_states({PID: state})

    with pytest.raises(AnsweredMeanwhile):
        asyncio.run(batch(answer=True))
    assert asyncio.run(batch(answer=False)) == []  # the retry reads the answer
    window = PatientWindow.from_bytes(unpack_state(redis.data[window_key(PID)]))
    assert window.position == (0, 2) and window.last_hour == 0 and len(window.rows[0]) == 1
    alert = PatientAlertState.from_bytes(redis.data[alert_key(PID)])
    assert alert.active is not None and alert.active.state == "acknowledged" and alert.closed_news2 == 3


def test_the_new_owner_writes_over_an_older_write_of_window_and_alert_that_landed_after_its_read() -> None:
    """The old owner's late write changes the alert too (one transaction with its window): the new
    owner, further in the stream, holds its events and writes over both, as before the alert rule."""
    redis = _Redis()
    store = stored(redis, stay(1, hr(0, 120)), OPEN)

    async def main() -> list[str]:
        new_owner = (await store.load_states([PID]))[PID]
        late = (await store.load_states([PID]))[PID]
        late.window.apply(hr(20, 118))
        late.window.advance(0, 2)
        late.alert.closed_news2 = 3  # anything its batch changed in the lifecycle
        assert await store.save_states({PID: late}) == []
        for offset, event in ((2, hr(20, 118)), (3, hr(40, 150))):
            new_owner.window.apply(event)
            new_owner.window.advance(0, offset)
        return await store.save_states({PID: new_owner})

    assert asyncio.run(main()) == []
    assert PatientWindow.from_bytes(unpack_state(redis.data[window_key(PID)])).position == (0, 3)
    assert PatientAlertState.from_bytes(redis.data[alert_key(PID)]).closed_news2 is None


def test_one_workers_answer_after_its_batch_and_its_next_batch_both_stand() -> None:
    """On one worker the batch, the acks and the timer hold ``alert_lock`` from read to write: an
    answer reads what the batch wrote, and the next batch reads the answer."""
    redis = _Redis()
    store = stored(redis, stay(1, hr(0, 120)), OPEN)

    async def main() -> tuple[list[str], list[str], list[str]]:
        first = (await store.load_states([PID]))[PID]
        first.window.apply(hr(20, 118))
        first.window.advance(0, 2)
        written = await store.save_states({PID: first})
        answered = await acknowledge(store, "rn")
        second = (await store.load_states([PID]))[PID]
        second.window.apply(hr(40, 119))
        second.window.advance(0, 3)
        return written, answered, await store.save_states({PID: second})

    assert asyncio.run(main()) == ([], [], [])
    alert = PatientAlertState.from_bytes(redis.data[alert_key(PID)])
    assert alert.active is not None and alert.active.state == "acknowledged"
    assert PatientWindow.from_bytes(unpack_state(redis.data[window_key(PID)])).position == (0, 3)


def newer_release(window: PatientWindow) -> bytes:
    """``window`` as a release past this one would write it: a version this worker does not read."""
    blob = bytearray(window.to_bytes())
    blob[0] = PatientWindow._VERSION + 1
    return bytes(blob)


def test_an_older_worker_leaves_a_newer_releases_window() -> None:
    redis = _Redis()
    read = stay(1, hr(0, 100))
    store = stored(redis, read, OPEN)

    async def main() -> list[str]:
        older = (await store.load_states([PID]))[PID]
        older.window.apply(hr(10, 110))
        older.window.advance(0, 2)
        newer = stay(3, hr(0, 100), hr(10, 110), hr(20, 150))  # the newer worker owns it now, further on
        redis.put(window_key(PID), pack_state(newer_release(newer)))
        return await store.save_states({PID: older})

    assert asyncio.run(main()) == [PID]
    assert unpack_state(redis.data[window_key(PID)])[0] == PatientWindow._VERSION + 1  # type: ignore[index]


def test_a_newer_releases_window_is_ahead_packed_or_not_and_a_damaged_one_is_not() -> None:
    ours = stay(5, hr(0, 100))
    newer = newer_release(stay(3, hr(0, 100)))  # even behind ours: its position is not read
    packed = pack_state(newer + b"\x00" * 200)  # long enough to be deflated
    assert packed[0] == PACKED
    assert store_module.window_ahead(ours, newer)
    assert store_module.window_ahead(ours, packed)
    assert not store_module.window_ahead(ours, ours.to_bytes()[:9])  # cut short: ours is the state to keep
    assert not store_module.window_ahead(ours, bytes((0xFA,)) + b"not deflate")
    assert not store_module.window_ahead(ours, b'{"a json blob": 1}')


def test_a_window_is_ahead_by_its_stream_position() -> None:
    ours = stay(5, hr(0, 100))
    assert store_module.window_ahead(ours, pack_state(stay(6, hr(0, 100)).to_bytes()))
    assert store_module.window_ahead(ours, stay(5, hr(0, 100)).to_bytes())
    assert not store_module.window_ahead(ours, stay(4, hr(0, 100)).to_bytes())
    assert store_module.window_ahead(ours, PatientWindow().to_bytes())  # no position: keep what the other wrote


def test_a_window_naming_a_newer_releases_treatment_is_ahead() -> None:
    """The treatments' table only grows, without a new blob version: a window naming a treatment
    past this release's was written by a newer one, which an older worker leaves as it is."""
    ours = stay(5, hr(0, 100))
    blob = bytearray(stay(3, hr(0, 100)).to_bytes())
    n_static = 0  # the window of ``stay`` holds no demographic or assessment
    treat_at = struct.calcsize(PatientWindow._HEADER) + 4 + 1 + 7 + 1 + 9 * n_static  # one row of one cell
    assert blob[treat_at] == 0  # no treatment: add one past the table
    blob[treat_at : treat_at + 1] = struct.pack("<BBqf", 1, 250, 0, 1.0)
    with pytest.raises(NewerTreatmentTable):
        PatientWindow.from_bytes(bytes(blob))
    assert store_module.window_ahead(ours, bytes(blob))
