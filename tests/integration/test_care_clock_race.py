"""The treatment agent's care clock on the real Redis: it is written only over the clock the agent read
(compare-and-set), so a stay the scoring step resumed (the held, earlier clock restored) or ended (the
clock held and deleted) between the agent's read and its write keeps the scoring step's clock."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import unique_patient, with_store
from tests.unit.models.test_stays import T0, stay
from vigil.agents import runtime as runtime_module
from vigil.agents.treat import care_batch
from vigil.infra import metrics
from vigil.infra.redis import PatientStore, care_key, pack_state, window_key
from vigil.models.care import CareClock
from vigil.schemas.scores import RiskScore, RuleScore

pytestmark = pytest.mark.integration


def test_a_blob_is_written_only_over_the_blob_read(stack, stack_settings) -> None:
    key = care_key(unique_patient("cas"))

    async def main(store: PatientStore) -> None:
        assert await store.save_blobs_if_unchanged({key: (None, b"{1}")}) == []  # absent, as read
        assert await store.client.get(key) == b"{1}"
        assert stack_settings.redis.ttl_s - 60 < await store.client.ttl(key) <= stack_settings.redis.ttl_s
        assert await store.save_blobs_if_unchanged({key: (None, b"{2}")}) == [key]  # written meanwhile
        assert await store.save_blobs_if_unchanged({key: (b"{0}", b"{2}")}) == [key]  # another blob
        assert await store.client.get(key) == b"{1}"
        assert await store.save_blobs_if_unchanged({key: (b"{1}", b"{2}")}) == []
        assert await store.client.get(key) == b"{2}"
        assert await store.save_blobs_if_unchanged({key: (b"{1}", b"{2}")}) == []  # a retry: already so
        await store.client.delete(key)
        assert await store.save_blobs_if_unchanged({key: (b"{2}", b"{3}")}) == [key]  # deleted meanwhile
        assert await store.client.get(key) is None

    store = PatientStore.connect(stack_settings)
    with_store(store, lambda: main(store))


def test_a_write_between_the_read_and_the_exec_aborts_it_and_is_kept(stack, stack_settings, monkeypatch) -> None:
    key = care_key(unique_patient("cas-watch"))

    async def main(store: PatientStore) -> None:
        await store.client.set(key, b"{1}")
        pipeline = store.client.pipeline
        rounds: list[list[bytes | None]] = []

        def pipeline_written_into(*args: Any, **kwargs: Any) -> Any:
            pipe = pipeline(*args, **kwargs)
            mget = pipe.mget

            async def mget_then_another_writer(*keys: Any) -> Any:
                read = await mget(*keys)
                rounds.append(read)
                if len(rounds) == 1:  # the scoring step writes after this read, before the EXEC
                    await store.client.set(key, b"{resumed}")
                return read

            pipe.mget = mget_then_another_writer
            return pipe

        monkeypatch.setattr(store.client, "pipeline", pipeline_written_into)
        assert await store.save_blobs_if_unchanged({key: (b"{1}", b"{2}")}) == [key]
        assert rounds == [[b"{1}"], [b"{resumed}"]]  # the EXEC aborted, the key read again
        assert await store.client.get(key) == b"{resumed}"

    store = PatientStore.connect(stack_settings)
    with_store(store, lambda: main(store))


class _Publisher:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    async def send(self, topic: Any, key: Any, value: bytes) -> None:
        self.sent.append(value)

    async def flush(self) -> None:
        pass


def at_risk_score(pid: str, hours: float) -> RiskScore:
    at = T0 + timedelta(hours=hours)
    news2 = RuleScore(name="NEWS2", total=6, parameters={}, band="medium")
    rule = RuleScore(name="qSOFA", total=0, parameters={})
    return RiskScore(
        score_id=f"s{hours}",
        patient_id=pid,
        hour=int(hours),
        scored_at=at,
        observed_at=at,
        event_ids=[],
        news2=news2,
        qsofa=rule,
        sirs=rule.model_copy(update={"name": "SIRS"}),
    )


@pytest.mark.parametrize("meanwhile", ["resume", "end"])
def test_a_stay_resumed_or_ended_while_the_agent_scores_care_keeps_the_scoring_steps_clock(
    stack, stack_settings, monkeypatch, meanwhile
) -> None:
    pid = unique_patient("care-race")
    window = stay(6)  # hours 0-5 of the stay: the score at 4.25 h is in it
    later = CareClock(time_zero=T0 + timedelta(hours=4)).model_dump_json().encode()  # the next stay's clock
    restored = CareClock(time_zero=T0 + timedelta(hours=1)).model_dump_json().encode()  # the held stay's

    async def main(store: PatientStore) -> None:
        await store.client.set(window_key(pid), pack_state(window.to_bytes()))
        await store.client.set(care_key(pid), later)
        read = store.load_blobs

        async def then_the_scoring_step_writes(keys: list[str]) -> list[bytes | None]:
            blobs = await read(keys)
            if care_key(pid) in keys:  # after the agent read the clock, before it writes one
                if meanwhile == "resume":
                    await store.client.set(care_key(pid), restored)
                else:
                    await store.client.delete(care_key(pid))
            return blobs

        monkeypatch.setattr(store, "load_blobs", then_the_scoring_step_writes)
        monkeypatch.setattr(runtime_module, "_runtime", SimpleNamespace(store=store))
        moved = metrics.CARE_CLOCKS_MOVED._value.get()
        publisher = _Publisher()
        assert await care_batch([at_risk_score(pid, 4.25)], publisher) == 1  # scored on the clock it read
        assert await store.client.get(care_key(pid)) == (restored if meanwhile == "resume" else None)
        assert metrics.CARE_CLOCKS_MOVED._value.get() == moved + 1

        # nothing moved: the agent's clock is written, and the same inputs are not scored again
        monkeypatch.setattr(store, "load_blobs", read)
        await store.client.set(care_key(pid), later)
        assert await care_batch([at_risk_score(pid, 4.25)], publisher) == 1
        written = CareClock.model_validate_json(await store.client.get(care_key(pid)))
        assert written.time_zero == T0 + timedelta(hours=4) and written.inputs is not None
        assert await care_batch([at_risk_score(pid, 4.25)], publisher) == 0

    store = PatientStore.connect(stack_settings)
    with_store(store, lambda: main(store))
