"""The batch safety net: poison inputs are isolated and dead-lettered, transient errors retried."""

import asyncio
import base64
import json
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

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


def dead_letters_counted(reason: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("vigil_dead_letters_total", {"reason": reason}) or 0.0


class FailingTopic(FakeTopic):
    """A dead-letter topic whose first ``failures`` deliveries fail with ``error`` (the future's)."""

    def __init__(self, failures: int, error: Exception) -> None:
        super().__init__()
        self.failures, self.error = failures, error

    async def send(self, topic, key, value, partition, timestamp, headers):
        if self.failures > 0:
            self.failures -= 1
            fut = asyncio.get_running_loop().create_future()
            fut.set_exception(self.error)
            return fut
        return await super().send(topic, key, value, partition, timestamp, headers)


def fast_retries(monkeypatch) -> None:
    from vigil.agents import runtime

    sleep = asyncio.sleep
    monkeypatch.setattr(runtime.asyncio, "sleep", lambda *_: sleep(0))


def test_a_dead_letter_is_counted_once_when_delivered(monkeypatch) -> None:
    """vigil_dead_letters_total was counted as a letter was handed to the producer: a batch retried
    after a failed flush counted its letters twice, a batch split after one counted them again."""
    from vigil.schemas.deadletter import Rejected

    fast_retries(monkeypatch)

    def refuse(reason: str):
        async def handler(batch, publisher: Publisher) -> None:
            for e in batch:
                await publisher.dead_letter(e, Rejected(reason, "x"))

        return handler

    before = dead_letters_counted("count_retried")
    dead = FailingTopic(1, ConnectionError("broker blip"))  # transient: the batch is retried whole
    asyncio.run(run_batch([Ev(Msg(b"bad", 1))], refuse("count_retried"), dead, "test"))  # type: ignore[arg-type]
    assert len(dead.sent) == 1 and dead_letters_counted("count_retried") - before == 1

    before = dead_letters_counted("count_split")
    dead = FailingTopic(1, ValueError("refused"))  # not transient: the batch is split, one event at a time
    batch = [Ev(Msg(b"bad", n)) for n in (2, 3, 4)]
    asyncio.run(run_batch(batch, refuse("count_split"), dead, "test"))  # type: ignore[arg-type]
    assert dead_letters_counted("count_split") - before == 3  # three inputs, though 5 records went out

    before = dead_letters_counted("count_never")
    dead = FailingTopic(10**6, ValueError("refused"))

    async def never_delivered() -> None:
        publisher = Publisher(dead)  # type: ignore[arg-type]
        await publisher.dead_letter(Ev(Msg(b"bad", 5)), Rejected("count_never", "x"))  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            await publisher.flush()

    asyncio.run(never_delivered())
    assert dead_letters_counted("count_never") == before


def test_a_record_key_near_a_megabyte_does_not_block_its_dead_letter(monkeypatch) -> None:
    """A ~1 MB key made even the letter without its original over the producer's 1 MB: the agent
    retried it forever and its partition stalled. The letter goes under the key's digest."""
    import hashlib

    from aiokafka.errors import MessageSizeTooLargeError
    from faust.exceptions import ProducerSendError

    from vigil.agents.runtime import _handle_batch

    fast_retries(monkeypatch)

    class OneMegabyte(FakeTopic):
        async def send(self, topic, key, value, partition, timestamp, headers):
            if len(key or b"") + len(value) > 1_000_000:  # the producer's max_request_size
                raise ProducerSendError(f"Error while sending: {MessageSizeTooLargeError()!r}")
            return await super().send(topic, key, value, partition, timestamp, headers)

    big = b"k" * 999_800

    async def handler(batch, publisher: Publisher) -> None:
        raise ValueError("poison")

    dead = OneMegabyte()
    asyncio.run(asyncio.wait_for(_handle_batch([Ev(Msg(b"x", 1, key=big))], handler, dead, "t"), 5))  # type: ignore[arg-type]
    ((key, value),) = dead.sent
    record = json.loads(value)
    assert key == hashlib.sha256(big).hexdigest().encode()
    assert record["key_size"] == len(big) and record["key_sha256"] == key.decode()
    assert base64.b64decode(record["original_b64"]) == b"x" and not record["truncated"]


def test_a_replayed_input_refused_again_names_the_letter_it_was_sent_from() -> None:
    from vigil.schemas.deadletter import REPLAY_HEADER, Rejected

    @dataclass
    class HeaderMsg(Msg):
        headers: object = None

    async def handler(batch, publisher: Publisher) -> None:
        for e in batch:
            await publisher.dead_letter(e, Rejected("unknown_code", "x"))

    dead = FakeTopic()
    replayed = HeaderMsg(b"{}", 1, headers=[("other", b"1"), (REPLAY_HEADER, b"vigil.deadletter/0/12")])
    fresh = HeaderMsg(b"{}", 2)
    asyncio.run(run_batch([Ev(replayed), Ev(fresh)], handler, dead, "test"))  # type: ignore[arg-type]
    assert [json.loads(v)["replay_of"] for _, v in dead.sent] == ["vigil.deadletter/0/12", None]


def test_a_send_error_faust_wraps_is_retried_not_dead_lettered(monkeypatch) -> None:
    """Faust raises ProducerSendError (no KafkaError) with the producer's error as its cause: a
    broker hiccup while a batch was sent made its good events ``internal`` dead letters."""
    from aiokafka.errors import KafkaTimeoutError
    from faust.exceptions import ProducerSendError

    fast_retries(monkeypatch)
    out, dead = FakeTopic(), FakeTopic()
    attempts = {"n": 0}

    async def handler(batch, publisher: Publisher) -> None:
        attempts["n"] += 1
        if attempts["n"] == 1:
            try:
                raise KafkaTimeoutError()
            except KafkaTimeoutError as exc:
                raise ProducerSendError(f"Error while sending: {exc!r}") from exc
        for e in batch:
            await publisher.send(out, e.message.key, e.message.value)

    asyncio.run(run_batch([Ev(Msg(b"a", 1)), Ev(Msg(b"b", 2))], handler, dead, "test"))  # type: ignore[arg-type]
    assert dead.sent == [] and [v for _, v in out.sent] == [b"a", b"b"] and attempts["n"] == 2
