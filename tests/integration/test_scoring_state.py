"""The scoring step's state on the real Redis (``agents.scoring._score_locked`` with the worker's
store, the publisher and the models replaced): what a batch writes beside what another writer did
meanwhile, and what a batch of one late result keeps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from tests.conftest import unique_patient, with_store
from vigil.agents import alert, scoring
from vigil.infra.redis import (
    OPEN_ALERTS_KEY,
    AnsweredMeanwhile,
    PatientStore,
    alert_key,
    care_key,
    carry_key,
    held_keys,
    unpack_state,
    window_key,
)
from vigil.models.alerting import ActiveAlert, AlertPolicy, PatientAlertState
from vigil.models.stepping import StayCarry
from vigil.models.stream_step import step_request
from vigil.models.window import PatientWindow
from vigil.schemas.alerts import AlertAck
from vigil.schemas.codes import CATALOGUE
from vigil.schemas.events import PatientEvent

pytestmark = pytest.mark.integration

T0 = datetime(2025, 1, 1, tzinfo=UTC)
CLOCK = b'{"time_zero": "2025-01-01T05:00:00Z"}'


class Publisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.letters: list[str] = []

    async def send(self, topic: Any, key: object, value: bytes) -> None:
        self.sent.append((topic.get_topic_name(), value))

    async def dead_letter(self, event: object, rejected: Any, budget: int = 0) -> None:
        self.letters.append(rejected.reason)

    async def flush(self) -> None:
        return None


class Failing:
    async def infer_many(self, requests: object) -> list[object]:
        raise RuntimeError("onnxruntime failed")


class Worker:
    """One worker's scoring step over the real Redis, its events numbered on partition 0."""

    def __init__(self, store: PatientStore, pid: str, bundle: object = None, batcher: object = None) -> None:
        self.store, self.pid, self.offset = store, pid, 0
        self.rt = SimpleNamespace(
            store=store, bundle=bundle, batcher=batcher, policy=AlertPolicy(), drift=None, alert_lock=asyncio.Lock()
        )

    def event(self, hours: float, code: str = "HR", value: float = 90.0, **kw: Any) -> PatientEvent:
        at = T0 + timedelta(hours=hours)
        return PatientEvent(patient_id=self.pid, observed_at=at, kind=CATALOGUE[code][0], code=code, value=value, **kw)

    async def batch(self, events: list[PatientEvent]) -> Publisher:
        parsed = []
        for e in events:
            self.offset += 1
            message = SimpleNamespace(partition=0, offset=self.offset, timestamp=None)
            parsed.append((SimpleNamespace(message=message), e))
        publisher = Publisher()
        scoring.runtime = lambda: self.rt  # type: ignore[assignment]
        await scoring._score_locked(parsed, publisher)  # type: ignore[arg-type]
        return publisher

    async def window(self) -> PatientWindow:
        return PatientWindow.from_bytes(unpack_state(await self.store.client.get(window_key(self.pid))))


@pytest.fixture
def store(stack, stack_settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[PatientStore]:
    """The worker's store; its connections belong to the test's event loop, which closes them
    (``with_store``)."""
    monkeypatch.setattr(scoring, "runtime", scoring.runtime)  # given back after the test
    yield PatientStore.connect(stack_settings)


def test_the_new_owner_writes_over_an_older_write_that_landed_after_its_read(store: PatientStore) -> None:
    """The old owner's delayed write landed between the new owner's read and write: the new owner's
    state (the same events and more) was the one skipped, and its events were in no window."""
    pid = unique_patient("owner")

    async def main() -> None:
        b = Worker(store, pid)
        await b.batch([b.event(h + 0.25) for h in range(3)])
        # the old owner's state: it applied the next message (offset 4) too, and writes late
        old_owner = await b.window()
        old_owner.apply(b.event(3.25, value=101))
        old_owner.advance(0, 4)
        stale = old_owner.to_bytes()
        original = store.save_states

        async def old_write_lands_first(states: dict) -> list[str]:  # type: ignore[type-arg]
            from vigil.infra.redis import pack_state

            await store.client.set(window_key(pid), pack_state(stale))
            return await original(states)

        store.save_states = old_write_lands_first  # type: ignore[method-assign]
        try:
            await b.batch([b.event(3.25, value=101), b.event(4.25, value=120)])
        finally:
            store.save_states = original  # type: ignore[method-assign]
        window = await b.window()
        assert window.position == (0, 5) and sorted(window.rows) == [0, 1, 2, 3, 4]

    with_store(store, main)


def test_the_old_owners_late_batch_leaves_the_acknowledgement_the_new_owner_applied(
    store: PatientStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new owner applied a clinician's acknowledgement between the old owner's read and write:
    the old owner's batch found the window as it had read it and wrote its unanswered alert back
    over the answer, and the escalation timer paged an acknowledged alert. Now nothing of that batch
    is written and it is handled again (``AnsweredMeanwhile``: transient), on the answered lifecycle
    (the alert key holds no stream position: the other way round it is the new owner's batch, whose
    offsets are committed)."""
    pid = unique_patient("answered")

    async def main() -> None:
        a = Worker(store, pid)
        await a.batch([a.event(h + 0.25) for h in range(3)])
        opened = PatientAlertState.from_bytes(await store.client.get(alert_key(pid)))
        opened.active = ActiveAlert("a1", "open", "high", "news2", T0.timestamp(), 0)
        await store.save_alerts({alert_key(pid): opened})
        # the new owner's alert agent (its own lock: another worker)
        new_owner = SimpleNamespace(store=store, alert_lock=asyncio.Lock(), policy=AlertPolicy())
        monkeypatch.setattr(alert, "runtime", lambda: new_owner)
        ack = AlertAck(alert_id="a1", patient_id=pid, action="acknowledge", by="rn-new-owner", at=datetime.now(UTC))
        original = store.save_states

        async def answered_meanwhile(states: dict) -> list[str]:  # type: ignore[type-arg]
            await alert.ack_batch([ack], Publisher())  # type: ignore[arg-type]
            return await original(states)

        late = [a.event(3.25, value=140), a.event(4.25, value=141)]  # a single 3: the alert stays active
        store.save_states = answered_meanwhile  # type: ignore[method-assign]
        try:
            with pytest.raises(AnsweredMeanwhile):
                await a.batch(late)
        finally:
            store.save_states = original  # type: ignore[method-assign]
        assert (await a.window()).position == (0, 3)  # nothing of the batch written
        a.offset = 3
        await a.batch(late)  # the batch again (the runtime retries a transient error), on the answer
        answered = PatientAlertState.from_bytes(await store.client.get(alert_key(pid)))
        assert answered.active is not None
        assert (answered.active.state, answered.active.acked_by) == ("acknowledged", "rn-new-owner")
        assert not await store.client.sismember(OPEN_ALERTS_KEY, alert_key(pid))  # the timer leaves it
        window = await a.window()
        assert window.position == (0, 5) and sorted(window.rows) == [0, 1, 2, 3, 4]

    with_store(store, main)


def test_a_care_clock_written_after_the_batch_read_is_held_at_its_discharge(store: PatientStore) -> None:
    """The treatment agent wrote the stay's first care clock after the batch read the patient: the
    end, deciding from what it had read, deleted it and held none, and the cancel restored none."""
    pid = unique_patient("clock")

    async def main() -> None:
        w = Worker(store, pid)
        await w.batch([w.event(h + 0.25) for h in range(6)])
        original = store.load_stay_keys

        async def clock_written_meanwhile(ids: Any) -> Any:
            out = await original(ids)
            await store.client.set(care_key(pid), CLOCK)
            return out

        store.load_stay_keys = clock_written_meanwhile  # type: ignore[method-assign]
        try:
            await w.batch([w.event(5.5, "discharge", 1, encounter="A")])
        finally:
            store.load_stay_keys = original  # type: ignore[method-assign]
        assert await store.client.get(held_keys(pid)[2]) == CLOCK
        await w.batch([w.event(5.6, "cancel_discharge", 1, encounter="A")])
        assert await store.client.get(care_key(pid)) == CLOCK

    with_store(store, main)


def test_a_batch_of_one_late_result_keeps_the_rows_a_model_outage_left_unfolded(store: PatientStore) -> None:
    """After a batch the models failed on, the window keeps the rows its carry has not folded (blob
    version 5). A batch of one late result of the stay before saved the window as version 4: those
    rows were gone, and the next scored batch finalized their hours with no values."""
    pid = unique_patient("unfolded")

    async def main() -> None:
        w = Worker(store, pid, SimpleNamespace(window_model=None, sequence_columns=None), Failing())
        await w.batch([w.event(h + 0.25) for h in range(3)])
        await w.batch([w.event(2.5, "discharge", 1, encounter="A")])
        await w.batch([w.event(h + 0.25, value=80 + h % 7) for h in range(10, 90)])  # the next stay, 80 h
        publisher = await w.batch([w.event(2.0, "Lactate", 3.1)])  # a late lab of the stay before
        assert publisher.letters == ["stay_ended"]
        window = await w.window()
        carry = StayCarry.from_bytes(unpack_state(await store.client.get(carry_key(pid))))
        request = step_request(window, carry, window.anchor_s)
        assert request is not None
        assert (~np.isnan(request.rows[:32])).any(axis=1).all()  # every unfolded hour has its values

    with_store(store, main)
