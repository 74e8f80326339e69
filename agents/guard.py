"""What a worker's timers and tasks may raise: never into Faust, which crashes the whole worker
(its scoring with it) when a timer or task raises. ``VigilApp`` guards every timer, task and
crontab it registers (``agents.app``); ``guarded`` is the guard itself."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from vigil.agents.health import AGENTS
from vigil.infra import metrics
from vigil.infra.logging import get_logger
from vigil.infra.redis import AnsweredMeanwhile

log = get_logger(__name__)


# Errors of the infrastructure around a batch or a timer: the broker or Redis away. A batch is
# retried whole (its effects are idempotent), a timer runs again at its next tick.
class StateMoved(Exception):
    """A state the batch read was written by another worker before the batch's write (a rebalance):
    the batch is handled again from what is there now."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    OSError,
    TimeoutError,
    StateMoved,
    AnsweredMeanwhile,  # a lifecycle the batch read was answered since: the batch again, on the answer
)

AsyncFn = Callable[..., Awaitable[Any]]
TimerFn = TypeVar("TimerFn", bound=AsyncFn)
GUARD_ATTR = "__vigil_guard__"  # the guard's name, on a guarded function (and copied by functools.wraps)


def sent_error(exc: BaseException) -> BaseException:
    """The producer's own error under Faust's ``ProducerSendError`` (not a ``KafkaError``), which
    wraps it with the cause chained; any other error as it is."""
    from faust.exceptions import ProducerSendError

    for _ in range(8):  # a wrapper of a wrapper at most, in practice; never a cycle
        inner = exc.__cause__ or exc.__context__
        if not isinstance(exc, ProducerSendError) or inner is None:
            break
        exc = inner
    return exc


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the broker or Redis away for a while (retry) rather than a bug or a bad
    record. A ``ProducerSendError`` is judged by its cause (``sent_error``), or a broker's hiccup
    while a batch is sent made its good events ``internal`` dead letters instead of a retry.
    aiokafka's ``KafkaTimeoutError`` (no metadata, or a batch expired waiting for the broker) is not
    flagged retriable, yet is."""
    from aiokafka.errors import KafkaError, KafkaTimeoutError

    exc = sent_error(exc)
    if isinstance(exc, KafkaTimeoutError):
        return True
    return isinstance(exc, TRANSIENT_ERRORS) or (isinstance(exc, KafkaError) and exc.retriable)


def output_refusal(exc: BaseException) -> str | None:
    """What the operator must mend when ``exc`` is the broker refusing Vigil's output (its ACL, a
    policy); None for any other error (a producer closed: ``is_stopping``). Not flagged retriable by
    aiokafka, yet no input is at fault: judged as a bad record, the batch was split and every good
    event dead-lettered ``internal`` (and committed) while the worker said it was ready. The batch
    waits instead, blocked, until the broker takes it (as Redis refusing its ACL: ``infra.redis``)."""
    from aiokafka.errors import ClusterAuthorizationFailedError, PolicyViolationError, TopicAuthorizationFailedError

    exc = sent_error(exc)
    if isinstance(exc, TopicAuthorizationFailedError | ClusterAuthorizationFailedError):
        return "the broker refuses the worker's user: grant it the service role's ACLs (vigil stack acls)"
    if isinstance(exc, PolicyViolationError):
        return "the broker's policy refuses Vigil's records: compare the topic's settings with the cluster's policy"
    return None


def is_stopping(exc: BaseException) -> bool:
    """Whether ``exc`` says the worker's producer is closed (aiokafka's ``ProducerClosed``, or Faust's
    producer ``NotReady``, "Producer service not yet started", as a stopped producer raises it): the
    worker is stopping, and no retry will ever send. Judged a refusal or a bad record, the batch waited
    for good (or split into dead letters that never left): the worker never exited on SIGTERM. Its
    batch is given up instead. Faust stops the agents, then the consumer (its last commit), then the
    producer: a closed producer means the consumer has made its last commit, so the batch given up,
    though the agent's ``take_events`` acks it, is not committed, and the next owner reads it again."""
    from aiokafka.errors import ProducerClosed
    from faust.exceptions import NotReady

    exc = sent_error(exc)
    return isinstance(exc, ProducerClosed) or (type(exc) is NotReady and "Producer" in str(exc))


def guard_name(fun: Callable[..., Any]) -> str | None:
    """The name ``fun`` is guarded under, or None if it is not guarded."""
    name = getattr(fun, GUARD_ATTR, None)
    return name if isinstance(name, str) else None


def default_name(fun: Callable[..., Any]) -> str:
    """``<module>.<function>``, the module without its package: ``loop.loop_beat``."""
    return f"{fun.__module__.rsplit('.', 1)[-1]}.{fun.__name__}"


def guard(fun: TimerFn, name: str | None = None) -> TimerFn:
    """``fun`` guarded under ``name``, else under ``<module>.<function>`` (``guarded``)."""
    return guarded(name or default_name(fun))(fun)


def guarded(name: str) -> Callable[[TimerFn], TimerFn]:
    """For a Faust timer or task: an exception it raises must not reach Faust. A transient one (the
    broker or Redis away, which their own alerts and readiness report) is logged (``timer.retry``);
    any other, a bug, is logged with its traceback (``timer.failed``), counted in
    ``vigil_timer_failures_total{timer}`` and as a crash of ``name`` for readiness (three within
    five minutes: not ready, ``agents.health``). A timer runs again at its next tick; a task that
    runs once at start does not. A function already guarded is returned as it is."""

    def wrap(fun: TimerFn) -> TimerFn:
        if guard_name(fun) is not None:
            return fun

        @functools.wraps(fun)
        async def run(*args: Any, **kwargs: Any) -> None:
            try:
                await fun(*args, **kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_transient(exc):
                    log.warning("timer.retry", timer=name, error=type(exc).__name__)
                    return
                metrics.TIMER_FAILURES.labels(name).inc()
                AGENTS.crashed(name)
                log.error("timer.failed", timer=name, error=type(exc).__name__, exc_info=exc)

        setattr(run, GUARD_ATTR, name)
        return cast(TimerFn, run)

    return wrap
