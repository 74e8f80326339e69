"""A batch waiting on the broker: its wait is bounded and shows (the agent retrying, so the worker is
not ready and the watchdog finds its stall explained), and an output the broker refuses (an ACL, a
policy) blocks the batch instead of dead-lettering its good events."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import structlog
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    ProducerClosed,
    TopicAuthorizationFailedError,
)
from faust.exceptions import NotReady, ProducerSendError

from tests.unit.agents.test_run_batch import Ev, FakeTopic, Msg
from tests.unit.agents.test_transient_errors import wrapped
from vigil.agents import runtime
from vigil.agents.guard import is_stopping, is_transient, output_refusal
from vigil.agents.health import AgentHealth
from vigil.agents.runtime import Publisher, run_batch


@pytest.fixture
def agents(monkeypatch: pytest.MonkeyPatch) -> AgentHealth:
    """The agents' health as the batch runtime reports it, fresh for each test."""
    health = AgentHealth()
    monkeypatch.setattr(runtime, "AGENTS", health)
    return health


class SlowBroker(FakeTopic):
    """The broker answering fetches but taking no produce request (too few replicas in sync): the
    records' futures stay pending until ``release`` settles them, with ``error`` (the producer's
    request timeout) or delivered."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[asyncio.Future[Any]] = []

    async def send(self, topic, key, value, partition, timestamp, headers):
        self.sent.append((key, value))
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        return fut

    def release(self, error: BaseException | None = None) -> None:
        for fut in self.waiting:
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)
        self.waiting.clear()


def test_a_batch_the_broker_keeps_waiting_marks_its_agent_retrying(
    agents: AgentHealth, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faust's 1200 s request timeout left a batch in its flush for 20 minutes, not retrying: the
    worker said it was ready and the watchdog, finding the stall unexplained, made it leave (every
    worker of the group in turn). Past the patience the agent is marked retrying; the producer's
    request timeout then fails the records and the batch is sent again, whole: nothing is lost."""
    monkeypatch.setattr(runtime, "DELIVERY_PATIENCE_S", 0.05)
    out, dead = SlowBroker(), FakeTopic()

    async def handler(batch, publisher: Publisher) -> None:
        for e in batch:
            await publisher.send(out, e.message.key, e.message.value)

    async def main() -> None:
        batch = [Ev(Msg(b"a", 1)), Ev(Msg(b"b", 2))]
        task = asyncio.ensure_future(run_batch(batch, handler, dead, "test.waiting"))  # type: ignore[arg-type]
        await asyncio.sleep(0.2)
        assert not task.done() and agents.holding()  # the stall is explained: the worker stays
        out.release(KafkaTimeoutError())  # the producer's request timeout: the batch is retried
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(out.sent) == 4:
                break
        assert not task.done() and agents.holding()
        out.release()  # the broker takes them: the batch ends, the agent is well again
        await asyncio.wait_for(task, 5)
        assert not agents.holding() and agents.ok()

    with structlog.testing.capture_logs() as logs:
        asyncio.run(main())
    assert [v for _, v in out.sent] == [b"a", b"b", b"a", b"b"] and dead.sent == []
    events = [e["event"] for e in logs]
    assert "batch.delivery_waiting" in events and "batch.retry" in events


def test_the_producer_gives_a_record_up_within_the_watchdogs_patience() -> None:
    """What bounds a flush: a record the broker has not acknowledged fails after the producer's
    request timeout (Faust's default, 1200 s, outlived the watchdog's 180 s many times over)."""
    from vigil.agents.app import PRODUCER_REQUEST_TIMEOUT_S, app, faust_config
    from vigil.infra.settings import get_settings

    assert faust_config(get_settings())["producer_request_timeout"] == PRODUCER_REQUEST_TIMEOUT_S <= 60
    assert app.conf.producer_request_timeout == PRODUCER_REQUEST_TIMEOUT_S


class RefusingTopic(FakeTopic):
    """An output topic the broker refuses while ``refusing``: at send (Faust wraps aiokafka's error
    in a ProducerSendError, as with a topic's metadata refused) or on the record's future."""

    def __init__(self, error: BaseException, at_send: bool = True) -> None:
        super().__init__()
        self.error, self.at_send, self.refusing, self.refused = error, at_send, True, 0

    async def send(self, topic, key, value, partition, timestamp, headers):
        if not self.refusing:
            return await super().send(topic, key, value, partition, timestamp, headers)
        self.refused += 1
        if self.at_send:
            raise wrapped(self.error)
        fut = asyncio.get_running_loop().create_future()
        fut.set_exception(self.error)
        return fut


@pytest.mark.parametrize("at_send", [True, False])
def test_an_output_the_broker_refuses_blocks_the_batch_until_mended(agents: AgentHealth, at_send: bool) -> None:
    """TopicAuthorizationFailedError was judged a bad input: the batch was split, every valid event
    dead-lettered ``internal`` and committed, and scoring stopped while /readyz said ready."""
    scores = RefusingTopic(TopicAuthorizationFailedError("vigil.scores"), at_send=at_send)
    dead = FakeTopic()

    async def handler(batch, publisher: Publisher) -> None:
        for e in batch:
            await publisher.send(scores, e.message.key, e.message.value)

    async def main() -> None:
        batch = [Ev(Msg(b"a", 1)), Ev(Msg(b"b", 2)), Ev(Msg(b"c", 3))]
        task = asyncio.ensure_future(run_batch(batch, handler, dead, "test.refused"))  # type: ignore[arg-type]
        for _ in range(100):
            await asyncio.sleep(0.05)
            if scores.refused >= 2:
                break
        assert not task.done() and agents.problems() == {"test.refused": "blocked"}
        scores.refusing = False  # the operator grants the ACL: the batch goes out whole
        await asyncio.wait_for(task, 10)
        assert agents.ok()

    with structlog.testing.capture_logs() as logs:
        asyncio.run(main())
    assert dead.sent == []  # no dead letter: no input was at fault
    assert sorted(v for _, v in scores.sent) == [b"a", b"b", b"c"]
    refused = [e for e in logs if e["event"] == "batch.refused"]
    assert refused and "vigil stack acls" in refused[0]["hint"]
    assert refused[0]["error"] == "TopicAuthorizationFailedError"


def test_a_dead_letter_topic_the_broker_refuses_blocks_without_shrinking_the_letter(agents: AgentHealth) -> None:
    """An ACL refusal is no record too large: the letter is retried as it is, the agent blocked."""
    dead = RefusingTopic(TopicAuthorizationFailedError("vigil.deadletter"))

    async def handler(batch, publisher: Publisher) -> None:
        raise ValueError("poison")

    async def main() -> None:
        task = asyncio.ensure_future(run_batch([Ev(Msg(b"p", 9))], handler, dead, "test.dlq"))  # type: ignore[arg-type]
        for _ in range(100):
            await asyncio.sleep(0.05)
            if dead.refused >= 2:
                break
        assert not task.done() and agents.problems() == {"test.dlq": "blocked"}
        dead.refusing = False
        await asyncio.wait_for(task, 10)

    with structlog.testing.capture_logs() as logs:
        asyncio.run(main())
    assert "deadletter.refused" not in [e["event"] for e in logs]
    (letter,) = [json.loads(v) for _, v in dead.sent]
    assert letter["offset"] == 9 and letter["original_b64"] != ""  # the original kept


@pytest.mark.parametrize(
    "error",
    [
        TopicAuthorizationFailedError("vigil.scores"),
        ClusterAuthorizationFailedError(),
        PolicyViolationError(),
    ],
)
def test_what_only_the_operator_mends_is_a_refusal_wrapped_or_not(error: BaseException) -> None:
    assert output_refusal(error) and output_refusal(wrapped(error)) and output_refusal(wrapped(error, chained=False))
    assert not is_transient(wrapped(error))


@pytest.mark.parametrize(
    "exc", [wrapped(MessageSizeTooLargeError()), wrapped(KafkaTimeoutError()), ValueError("a bug"), ProducerSendError()]
)
def test_a_bad_record_a_bug_or_a_broker_away_is_no_refusal(exc: BaseException) -> None:
    assert output_refusal(exc) is None


@pytest.mark.parametrize("error", [ProducerClosed(), NotReady("Producer service not yet started")])
@pytest.mark.parametrize("to_dead_letters", [False, True])
def test_a_batch_whose_producer_is_closed_is_given_up_uncommitted(
    agents: AgentHealth, error: BaseException, to_dead_letters: bool
) -> None:
    """The worker is stopping: its producer closed (ProducerClosed) or not started (Faust's NotReady).
    Judged a refusal, the batch waited for good; judged a bad record, it split into dead letters that
    never left: either way the worker never exited on SIGTERM. Given up instead (a cancel), nothing
    dead-lettered: the consumer, stopped before the producer, made its last commit before this batch,
    which the next owner reads again."""
    assert is_stopping(error) and is_stopping(wrapped(error)) and output_refusal(error) is None
    assert not is_stopping(NotReady("Not connected to Kafka Broker"))  # not the producer's
    out = RefusingTopic(error)
    dead = RefusingTopic(error) if to_dead_letters else FakeTopic()

    async def handler(batch, publisher: Publisher) -> None:
        if to_dead_letters:
            raise ValueError("a bad record, whose dead letter cannot leave either")
        for e in batch:
            await publisher.send(out, e.message.key, e.message.value)

    async def main() -> None:
        task = asyncio.ensure_future(run_batch([Ev(Msg(b"a", 1))], handler, dead, "test.stopping"))  # type: ignore[arg-type]
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert dead.sent == []


def test_a_count_that_fails_once_the_batch_is_done_does_not_send_it_again(agents: AgentHealth) -> None:
    """A deferred count (``when_done``) raising after the batch's outputs were delivered and its state
    written made the finished batch a poison one: its outputs went out again, its events dead-lettered."""
    out, dead = FakeTopic(), FakeTopic()

    def broken() -> None:
        raise RuntimeError("a metric's label")

    async def handler(batch, publisher: Publisher) -> None:
        for e in batch:
            await publisher.send(out, e.message.key, e.message.value)
        runtime.when_done(broken)

    asyncio.run(run_batch([Ev(Msg(b"a", 1)), Ev(Msg(b"b", 2))], handler, dead, "test.count"))  # type: ignore[arg-type]
    assert [v for _, v in out.sent] == [b"a", b"b"] and dead.sent == []
