"""A stay's keys on the real Redis as a discharge holds it and a cancel gives it back: the window, the
carry and the care clock move to the held keys and back inside the state's MULTI/EXEC, with the TTL."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from tests.conftest import unique_patient, with_store
from tests.unit.models.test_stays import leaves, stay
from vigil.infra.redis import (
    PatientState,
    PatientStore,
    StayChange,
    StayKeys,
    care_key,
    carry_key,
    held_keys,
    unpack_state,
)
from vigil.models.alerting import PatientAlertState
from vigil.models.stays import HeldStay, discharge, next_stay
from vigil.models.stepping import StayCarry
from vigil.models.window import PatientWindow

pytestmark = pytest.mark.integration

CARE = b'{"time_zero": "2025-01-01T03:00:00Z"}'
LEFT_S = int(leaves(5.5).observed_at.timestamp())


def test_a_discharge_holds_the_stay_and_its_cancel_gives_it_back(stack, stack_settings) -> None:
    pid = unique_patient("held")
    going, carry = stay(5), StayCarry(boundary=0, closed=3)
    alert = PatientAlertState(patient_id=pid)
    end = discharge(going, alert, leaves(5.5), going.hour_start(0) + timedelta(days=1), carry=carry)

    async def write(window: PatientWindow, carry: StayCarry | None, *changes: StayChange) -> None:
        await store.save_states({pid: PatientState(window, carry, alert, list(changes))})

    async def keys() -> list[bytes | None]:
        return list(await store.client.mget([carry_key(pid), care_key(pid), *held_keys(pid)]))

    async def held() -> StayKeys:
        return (await store.load_stay_keys([pid]))[pid]

    async def main() -> None:
        await write(going, carry)
        await store.client.set(care_key(pid), CARE, ex=60)
        assert await held() == StayKeys()  # nothing held before a discharge

        await write(end.window, None, StayChange("end", end.held, LEFT_S))
        carry_blob, care, h_window, h_carry, h_care = await keys()
        assert carry_blob is None and care is None  # the next stay starts without them
        assert h_window is not None and h_carry is not None and h_care == CARE
        ttls = [await store.client.ttl(k) for k in held_keys(pid)]
        # all with the state's TTL: the held care clock too, though the clock had 60 s left
        assert all(stack_settings.redis.ttl_s - 60 < ttl <= stack_settings.redis.ttl_s for ttl in ttls)
        kept = (await held()).held
        assert kept is not None and kept.window == end.held.window and kept.carry is not None
        assert kept.carry.to_bytes() == carry.to_bytes()

        # a late result joins the held stay (here its carry no longer fits: none is held)
        late = HeldStay(kept.window, None)
        await write(end.window, None, StayChange("late", late))
        assert (await held()).held == late

        # the next stay began and wrote its own carry and care clock: the cancel restores the held
        # stay's clock (the earlier) and keeps the end it cancelled
        await write(next_stay(end.window), StayCarry(boundary=0, closed=0), StayChange("begin"))
        await store.client.set(care_key(pid), b'{"next": 1}')
        await write(kept.window, kept.carry, StayChange("resume"))
        carry_blob, care, h_window, h_carry, h_care = await keys()
        assert unpack_state(carry_blob) == carry.to_bytes() and care == CARE
        assert (h_window, h_carry, h_care) == (None, None, None)
        # nothing to resume; the cancelled discharge's time stays: sent again, it is a duplicate
        assert await held() == StayKeys(None, LEFT_S)

        # a held stay without a care clock: the next stay's clock (inside the resumed stay) stays
        await store.client.delete(care_key(pid))
        await write(end.window, None, StayChange("end", end.held, LEFT_S + 7200))
        assert (await held()).discharged_s == LEFT_S + 7200  # the newest discharge's time
        await write(next_stay(end.window), None, StayChange("begin"))
        await store.client.set(care_key(pid), b'{"next": 2}')
        await write(kept.window, kept.carry, StayChange("resume"))
        assert (await keys())[1] == b'{"next": 2}'

        # a discharge and its cancel in one batch leave the care clock where it was
        await store.client.set(care_key(pid), CARE)
        await write(kept.window, kept.carry, StayChange("end", end.held), StayChange("resume"))
        _, care, *held_after = await keys()
        assert care == CARE and held_after == [None, None, None]

        # a hospital discharge after a transfer out lets go of the held stay; the end's time stays
        await write(end.window, None, StayChange("end", end.held, LEFT_S + 3600))
        assert (await held()).held is not None
        await write(end.window, None, StayChange("release"))
        assert await held() == StayKeys(None, LEFT_S + 3600)
        assert (await keys())[2:] == [None, None, None]

    store = PatientStore.connect(stack_settings)
    with_store(store, main)


def test_an_end_sent_again_after_a_lost_reply_keeps_the_held_care_clock(stack, stack_settings) -> None:
    """The write is retried when Redis's reply is lost (``_until_ok``): the end's transaction sent
    twice must leave the held copy of the care clock. DEL + COPY sent twice deleted it (the first
    EXEC had deleted the COPY's source), and a cancel then restarted the treatment clock's time zero.
    The care clock is read under the write's WATCH: one the treatment agent wrote after the batch
    read the patient is held too."""
    pid = unique_patient("held-retry")
    going = stay(5)
    alert = PatientAlertState(patient_id=pid)
    end = discharge(going, alert, leaves(5.5), going.hour_start(0) + timedelta(days=1))
    store = PatientStore.connect(stack_settings)

    async def main() -> None:
        await store.save_states({pid: PatientState(going, None, alert)})
        read = (await store.load_states([pid]))[pid]  # the batch reads the patient
        await store.client.set(care_key(pid), CARE, ex=60)  # then the treatment agent writes its clock
        ending = dataclasses.replace(read, window=end.window, stays=[StayChange("end", end.held, LEFT_S)])
        for _ in range(2):  # the same write, as _until_ok sends it again after a lost reply
            assert await store.save_states({pid: ending}) == []
        assert await store.client.get(held_keys(pid)[2]) == CARE
        assert await store.client.get(care_key(pid)) is None
        # a stay without a clock: an earlier stay's held copy goes
        bare = StayChange("end", end.held, LEFT_S + 60)
        await store.save_states({pid: PatientState(end.window, None, alert, [bare])})
        assert await store.client.get(held_keys(pid)[2]) is None

    with_store(store, main)


def test_a_damaged_window_starts_afresh_and_a_newer_one_is_left_alone(stack, stack_settings) -> None:
    """A window blob cut short is logged and counted, and the patient is scored from a fresh window
    (not every event dead-lettered until the key expires); a newer version's blob still raises, for
    an older worker mid-upgrade must not overwrite it."""
    from vigil.infra import metrics
    from vigil.infra.redis import window_key

    damaged, newer = unique_patient("win-damaged"), unique_patient("win-newer")
    store = PatientStore.connect(stack_settings)
    blob = stay(5).to_bytes()

    async def main() -> None:
        before = metrics.WINDOWS_UNREADABLE._value.get()
        await store.client.set(window_key(damaged), blob[:-7], ex=60)
        state = (await store.load_states([damaged]))[damaged]
        assert state.window == PatientWindow()
        assert metrics.WINDOWS_UNREADABLE._value.get() == before + 1
        await store.client.set(window_key(newer), bytes([PatientWindow._VERSION + 1]) + blob[1:], ex=60)
        with pytest.raises(ValueError, match="unknown window blob version"):
            await store.load_states([newer])

    with_store(store, main)


def test_a_batch_that_read_before_another_worker_wrote_leaves_that_write(stack, stack_settings) -> None:
    """A worker that lost the partition while its batch waited on Redis (Faust does not wait for the
    batch at a rebalance) wrote the window it read over the new owner's newer one: the hours the
    new owner applied and committed were gone from the stay. Its write now leaves that patient (and
    writes the others); the same write sent again after a lost reply still counts as written."""
    from vigil.infra import metrics
    from vigil.infra.redis import window_key

    moved, kept = unique_patient("stale"), unique_patient("stale-other")
    alert = PatientAlertState(patient_id=moved)
    store = PatientStore.connect(stack_settings)

    async def main() -> None:
        await store.save_states({p: PatientState(stay(3), None, alert) for p in (moved, kept)})
        old = await store.load_states([moved, kept])  # the worker losing the partition reads
        newer = await store.load_states([moved])  # the new owner reads, applies, writes
        assert await store.save_states({moved: dataclasses.replace(newer[moved], window=stay(6))}) == []
        before = metrics.STATES_SUPERSEDED._value.get()
        late = {p: dataclasses.replace(old[p], window=stay(4)) for p in old}
        assert await store.save_states(late) == [moved]
        assert metrics.STATES_SUPERSEDED._value.get() == before + 1
        assert PatientWindow.from_bytes(unpack_state(await store.client.get(window_key(moved)))) == stay(6)
        assert PatientWindow.from_bytes(unpack_state(await store.client.get(window_key(kept)))) == stay(4)
        assert await store.save_states({kept: late[kept]}) == []  # sent again: already written

    with_store(store, main)
