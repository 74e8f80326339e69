"""The batch safety net: poison inputs are isolated and dead-lettered, transient errors retried."""

import asyncio
import base64
import json
from dataclasses import dataclass
from types import SimpleNamespace

from vigil.agents.runtime import Publisher, run_batch


@dataclass
class Msg:
    value: bytes
    offset: int
    topic: str = "vigil.events"
    partition: int = 0
    key: bytes | None = b"p1"


@dataclass
class Ev:
    message: Msg


class FakeTopic:
    """A topic as Publisher uses it: its name, and its app's producer (faust's ``ProducerT.send``)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []
        self.app = SimpleNamespace(producer=self)

    def get_topic_name(self) -> str:
        return "vigil.test"

    async def send(self, topic, key, value, partition, timestamp, headers):
        assert topic == "vigil.test" and partition is None  # keyed: the producer's partitioner chooses
        self.sent.append((key, value))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def test_poison_event_is_isolated_and_dead_lettered() -> None:
    out, dead = FakeTopic(), FakeTopic()
    handled: list[bytes] = []

    async def handler(batch, publisher: Publisher) -> None:
        for e in batch:
            if e.message.value == b"poison":
                raise ZeroDivisionError("feature code blew up")
        for e in batch:
            handled.append(e.message.value)
            await publisher.send(out, e.message.key, e.message.value)

    batch = [Ev(Msg(b"a", 1)), Ev(Msg(b"poison", 2)), Ev(Msg(b"c", 3))]
    asyncio.run(run_batch(batch, handler, dead, "test"))  # type: ignore[arg-type]
    assert handled == [b"a", b"c"]
    assert len(dead.sent) == 1
    record = json.loads(dead.sent[0][1])
    assert record["reason"] == "internal" and "ZeroDivisionError" in record["detail"]
    assert base64.b64decode(record["original_b64"]) == b"poison" and record["offset"] == 2


def test_transient_errors_retry_the_whole_batch() -> None:
    attempts = {"n": 0}

    async def handler(batch, publisher) -> None:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise ConnectionError("redis restarting")

    dead = FakeTopic()
    asyncio.run(run_batch([Ev(Msg(b"a", 1))], handler, dead, "test"))  # type: ignore[arg-type]
    assert attempts["n"] == 3 and dead.sent == []


def test_a_cancelled_batch_is_finished_before_the_cancel_propagates() -> None:
    """Faust acks a take_events batch when the agent is cancelled (shutdown, rebalance): the batch
    must be fully handled by then, or its offsets are committed with nothing done."""
    import pytest

    out, dead = FakeTopic(), FakeTopic()
    started = asyncio.Event()

    async def handler(batch, publisher: Publisher) -> None:
        started.set()
        await asyncio.sleep(0.05)  # e.g. waiting for Redis or the broker
        for e in batch:
            await publisher.send(out, e.message.key, e.message.value)

    async def main() -> None:
        agent = asyncio.ensure_future(run_batch([Ev(Msg(b"a", 1)), Ev(Msg(b"b", 2))], handler, dead, "t"))
        await started.wait()
        agent.cancel()
        with pytest.raises(asyncio.CancelledError):
            await agent

    asyncio.run(main())
    assert [v for _, v in out.sent] == [b"a", b"b"]


class SizeLimitedTopic(FakeTopic):
    """A dead-letter topic whose broker refuses records over ``limit`` bytes (message.max.bytes)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.refused = 0

    async def send(self, topic, key, value, partition, timestamp, headers):
        from aiokafka.errors import MessageSizeTooLargeError

        if len(value) > self.limit:
            self.refused += 1
            raise MessageSizeTooLargeError("record too large")
        return await super().send(topic, key, value, partition, timestamp, headers)


def test_a_refused_dead_letter_falls_back_to_size_and_hash_and_never_raises() -> None:
    """Issue 16: the fallback dead letter was not guarded; the agent crashed and its batch was acked."""
    import hashlib

    from vigil.agents.health import AGENTS

    big = b"W" * 900_000
    dead = SizeLimitedTopic(limit=2_000)

    async def handler(batch, publisher: Publisher) -> None:
        if any(e.message.value == big for e in batch):
            raise ValueError("cannot handle this")

    batch = [Ev(Msg(b"a", 1)), Ev(Msg(big, 2)), Ev(Msg(b"c", 3))]
    asyncio.run(run_batch(batch, handler, dead, "test.size"))  # type: ignore[arg-type]
    assert dead.refused == 1 and len(dead.sent) == 1
    record = json.loads(dead.sent[0][1])
    assert record["reason"] == "internal" and record["offset"] == 2 and record["original_b64"] == ""
    assert record["original_sha256"] == hashlib.sha256(big).hexdigest() and record["original_size"] == 900_000
    assert AGENTS.ok()


def test_a_dead_letter_the_broker_keeps_refusing_blocks_the_batch_and_readiness() -> None:
    """Never ack a batch whose dead letter was not delivered: the agent waits, not ready, until it is."""
    from vigil.agents.health import AGENTS

    dead = SizeLimitedTopic(limit=0)  # refuses everything, e.g. a missing ACL

    async def handler(batch, publisher: Publisher) -> None:
        raise ValueError("poison")

    async def main() -> None:
        task = asyncio.ensure_future(run_batch([Ev(Msg(b"p", 7))], handler, dead, "test.blocked"))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if not AGENTS.ok():
                break
        assert not task.done() and AGENTS.problems() == {"test.blocked": "blocked"}
        dead.limit = 10_000  # the operator fixes the topic: the dead letter goes out, the batch ends
        await asyncio.wait_for(task, 10)
        assert AGENTS.ok()

    asyncio.run(main())
    assert len(dead.sent) == 1 and json.loads(dead.sent[0][1])["offset"] == 7
    assert dead.refused >= 2  # the full record, then the minimal one, until the topic took it
