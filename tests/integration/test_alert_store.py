"""Alert lifecycles written on the real Redis: each under its key with the TTL, and the escalation
timer's set holds exactly the keys whose alert waits on the wall clock (open or snoozed)."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import unique_patient, with_store
from vigil.infra.redis import CAS_ATTEMPTS, OPEN_ALERTS_KEY, PatientStore, alert_key
from vigil.models.alerting import ActiveAlert, PatientAlertState

pytestmark = pytest.mark.integration


def alert(state: str, snoozed_until_s: float | None = None) -> PatientAlertState:
    active = ActiveAlert("a1", state, "high", "news2", 0.0, 0, snoozed_until_s=snoozed_until_s)
    return PatientAlertState(patient_id="p", active=active)


def test_save_alerts_writes_lifecycles_and_the_timers_set_in_one_go(stack, stack_settings) -> None:
    opened, snoozed, acked, closed = (alert_key(unique_patient("as")) for _ in range(4))
    states = {
        opened: alert("open"),
        snoozed: alert("acknowledged", snoozed_until_s=4e9),
        acked: alert("acknowledged"),
        closed: PatientAlertState(patient_id="p"),
    }

    async def main() -> tuple[list[bytes | None], list[bool], list[int]]:
        store = PatientStore.connect(stack_settings)
        try:
            await store.client.sadd(OPEN_ALERTS_KEY, acked, closed)  # were open before this write
            await store.save_alerts(states)
            blobs = await store.load_blobs(list(states))
            member = [bool(await store.client.sismember(OPEN_ALERTS_KEY, k)) for k in states]
            ttls = [await store.client.ttl(k) for k in states]
            return blobs, member, ttls
        finally:
            await store.close()

    blobs, member, ttls = asyncio.run(main())
    assert [PatientAlertState.from_bytes(b) for b in blobs] == list(states.values())
    assert member == [True, True, False, False]
    assert all(0 < ttl <= stack_settings.redis.ttl_s for ttl in ttls)


def test_the_timers_write_keeps_an_answer_written_since_it_read(stack, stack_settings) -> None:
    """The escalation timer writes only where the key still holds what it read: an acknowledgement the
    patient's worker wrote meanwhile (a timer of a worker whose partition moved) stays, and stays out
    of the timer's set; a key as read is written, and its set membership follows its state."""
    answered, waiting = alert_key(unique_patient("cas")), alert_key(unique_patient("cas"))

    async def main() -> tuple[list[str], list[PatientAlertState], list[bool]]:
        store = PatientStore.connect(stack_settings)
        try:
            await store.save_alerts({answered: alert("open"), waiting: alert("open")})
            read = dict(zip([answered, waiting], await store.load_blobs([answered, waiting]), strict=True))
            await store.save_alerts({answered: alert("acknowledged")})  # the owner, between read and write
            moved = await store.save_alerts_if_unchanged(
                {answered: (read[answered], alert("escalated")), waiting: (read[waiting], alert("acknowledged"))}
            )
            blobs = await store.load_blobs([answered, waiting])
            member = [bool(await store.client.sismember(OPEN_ALERTS_KEY, k)) for k in (answered, waiting)]
            return moved, [PatientAlertState.from_bytes(b) for b in blobs], member
        finally:
            await store.close()

    moved, (kept, written), member = asyncio.run(main())
    assert moved == [answered]
    assert kept.active is not None and kept.active.state == "acknowledged"
    assert written.active is not None and written.active.state == "acknowledged"
    assert member == [False, False]


def test_a_write_between_the_read_and_the_exec_is_read_again(stack, stack_settings) -> None:
    """A key written after the optimistic write read it (WATCH) aborts the EXEC: the write reads the
    key again and decides on what is there now; a key that never stops changing is given up after
    ``CAS_ATTEMPTS`` rounds (reported, not written)."""
    key = alert_key(unique_patient("race"))
    store, owner = PatientStore.connect(stack_settings), PatientStore.connect(stack_settings)
    seen: list[bytes | None] = []

    def plan(writes: int):  # type: ignore[no-untyped-def]
        async def read(pipe):  # type: ignore[no-untyped-def]
            seen.append(await pipe.get(key))
            if len(seen) <= writes:  # another writer, between this round's read and its EXEC
                await owner.client.set(key, b"owner-%d" % len(seen))
            return (lambda pipe: pipe.set(key, b"mine after " + (seen[-1] or b"none"))), len(seen)

        return read

    async def main() -> tuple[tuple[bool, int], bytes | None, tuple[bool, int], bytes | None]:
        try:
            once = await store._watched([key], plan(1))
            after_once = await store.client.get(key)
            seen.clear()
            never = await store._watched([key], plan(CAS_ATTEMPTS))
            return once, after_once, never, await store.client.get(key)
        finally:
            await owner.close()

    once, after_once, never, after_never = with_store(store, main)
    assert once == (True, 2) and after_once == b"mine after owner-1"
    assert never == (False, CAS_ATTEMPTS) and after_never == b"owner-%d" % CAS_ATTEMPTS
