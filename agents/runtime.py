"""Worker runtime: the Redis store, the stepping model bundle, the batcher and the ward drift
tracker, created once per worker on first use inside the event loop, plus the publish helper that
waits for delivery."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

import faust

from vigil.agents.guard import is_stopping, is_transient, output_refusal, sent_error
from vigil.agents.health import AGENTS
from vigil.agents.progress import PROGRESS
from vigil.infra import metrics
from vigil.infra.allocator import keep_freed_memory
from vigil.infra.heap import freeze_startup_heap
from vigil.infra.logging import get_logger
from vigil.infra.redis import PatientStore, RedisHealth
from vigil.infra.settings import get_settings
from vigil.models.alerting import AlertPolicy
from vigil.models.batching import DynamicBatcher
from vigil.models.bundle import SteppingBundle
from vigil.models.site_threshold import SiteThresholdError, site_threshold_hint
from vigil.models.step_session import StepSession
from vigil.models.stream_step import StepOutcome, StepRequest, advance, load_served_bundle, served_bundle_dir
from vigil.schemas.deadletter import (
    MAX_DEAD_LETTER_BYTES,
    MAX_REPLAY_OF_CHARS,
    REPLAY_HEADER,
    DeadLetter,
    Rejected,
    Source,
    dead_letter_key,
)
from vigil.schemas.errors import UserError

log = get_logger(__name__)


class Runtime:
    def __init__(self) -> None:
        keep_freed_memory()  # numpy temporaries of a scoring batch: reuse the heap, no page faults
        settings = get_settings()
        self.settings = settings
        self.health = RedisHealth()
        self.store = PatientStore.connect(settings, self.health)  # credentials: infra.connect
        self.bundle = _load_bundle()
        self.runner = StepSession(self.bundle.step_session, self.bundle.hidden) if self.bundle else None
        # one call of the bundle per coalesced batch of patients, in a thread off the event loop
        self.batcher: DynamicBatcher[StepRequest, StepOutcome] = DynamicBatcher(
            self._advance,
            settings.batch.max_batch_size,
            settings.batch.max_queue_delay_ms,
            on_batch=_observe_batch,
            inline_from=settings.batch.inline_from,
        )
        # held while a patient's alert lifecycle is read, changed and written back: by the scoring
        # step (scores) and the alert agent (acknowledgements, the escalation timer) of this worker
        self.alert_lock = asyncio.Lock()
        self.policy = AlertPolicy(
            exit_ratio=settings.alerts.exit_ratio,
            suppress_s=settings.alerts.suppress_s,
            escalate_after_s=settings.alerts.escalate_after_s,
            reescalate_news2_step=settings.alerts.reescalate_news2_step,
            reescalate_risk_step=settings.alerts.reescalate_risk_step,
        )
        from vigil.agents.drift import WardDriftTracker

        self.drift = WardDriftTracker.for_bundle(self.bundle, settings.drift)

    def _advance(self, requests: Sequence[StepRequest]) -> list[StepOutcome]:
        assert self.bundle is not None and self.runner is not None
        return advance(self.bundle, self.runner, requests, explain=self.settings.batch.explain != "none")


def _observe_batch(size: int, seconds: float) -> None:
    metrics.BATCH_SIZE.observe(size)
    metrics.INFERENCE_SECONDS.observe(seconds)


def _load_bundle() -> SteppingBundle | None:
    settings = get_settings()
    folder = served_bundle_dir(settings.bundle_dir)  # VIGIL_BUNDLE_DIR without a bundle: the operator's line
    try:
        bundle = load_served_bundle(
            folder, intra_op_threads=settings.batch.intra_op_threads, site=settings.site.facts()
        )
    except SiteThresholdError:  # a site setting the bundle cannot serve: the operator must fix it
        raise
    except Exception as exc:
        if settings.bundle_dir is not None:  # the operator named this bundle: serve it or nothing
            raise UserError(
                f"VIGIL_BUNDLE_DIR={settings.bundle_dir}: the bundle does not load ({type(exc).__name__}: "
                f"{str(exc)[:200]}): fix or replace the folder, or unset VIGIL_BUNDLE_DIR"
            ) from exc
        # the shipped bundle missing or damaged: serve rule scores, say so loudly
        log.warning("models.unavailable", reason=type(exc).__name__, detail=str(exc)[:200])
        return None
    seq_kind = str(bundle.manifest["models"]["deterioration"]["kind"])
    metrics.BUNDLE_INFO.labels(bundle.version, seq_kind, f"{bundle.state_tag:08x}").set(1)
    chosen = bundle.alert_threshold
    metrics.ALERT_THRESHOLD.labels(chosen.rule).set(chosen.threshold)
    if chosen.training_alert_share is not None:
        metrics.ALERT_THRESHOLD_TRAINING_SHARE.set(chosen.training_alert_share)
    if chosen.training_mean_risk is not None:
        metrics.TRAINING_MEAN_RISK.set(chosen.training_mean_risk)
    log.info(
        "models.loaded",
        version=bundle.version,
        threshold=bundle.combined_threshold,
        threshold_rule=chosen.rule,
        site_prevalence=chosen.site_prevalence,
        site_mean_risk=chosen.site_mean_risk,
        threshold_capped=chosen.capped,
        providers=bundle.step_session.get_providers(),
        artifacts=str(bundle.artifacts_dir),
        state_tag=f"{bundle.state_tag:08x}",
        hour_zero=bundle.hour_zero,
    )
    if bundle.hour_zero != "first-measurement":
        log.warning(
            "models.hour_zero_skew",
            version=bundle.version,
            detail="trained counting a stay's hours from its file's first row; the stream counts from the first "
            "measurement: serve a bundle of 2.7.0 or later (docs/models.md, 'Hour 0')",
        )
    hint = site_threshold_hint(chosen.rule)
    if hint:
        log.info("models.threshold_hint", hint=hint)
    return bundle


def batches(
    stream: faust.StreamT, size: int | None = None, within_s: float | None = None
) -> AsyncIterator[Sequence[faust.EventT]]:
    """Batches of events (``take_events``): acked by Faust only when the next batch is requested."""
    settings = get_settings().batch
    return cast(faust.Stream, stream).take_events(
        size or settings.stream_take, within=within_s or settings.stream_within_s
    )


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime()
        # first batch of the process: Faust, the clients and the bundle are all up by now
        freeze_startup_heap()
    return _runtime


def current_runtime() -> Runtime | None:
    """The runtime if this process has built it (its first batch or fleet announcement), else None."""
    return _runtime


def store_healthy() -> bool:
    """The worker's own view for readiness: False while its Redis writes are being retried."""
    return True if _runtime is None else bool(_runtime.health.ok)


# The broker acknowledges a batch's records within milliseconds when it is well. Waiting longer, it
# takes produce requests no more (too few replicas in sync, a partition without a leader) while it
# still answers fetches: the batch's agent is marked retrying, so that the worker says it is not
# ready and the watchdog finds its stalled partitions explained (agents.progress), until the
# producer's request timeout (agents.app) fails the records and the batch is retried.
DELIVERY_PATIENCE_S = 10.0

# What the batch attempt in hand takes once it is done (``when_done``): None outside a batch.
_WHEN_DONE: ContextVar[list[Callable[[], object]] | None] = ContextVar("vigil_when_done", default=None)


def when_done(take: Callable[[], object]) -> None:
    """Call ``take`` (a metric counted, a ward's drift window fed) once the batch in hand is done:
    its outputs delivered, its Redis writes made. A batch retried after a failed flush, or split
    event by event after a poison input, is handled two or more times: counted as its records were
    handed to the producer, its events, scores and alerts were counted each time. Outside a batch
    (a direct call), at once."""
    pending = _WHEN_DONE.get()
    if pending is None:
        take()
    else:
        pending.append(take)


@contextlib.contextmanager
def taken_when_done() -> Iterator[None]:
    """The ``when_done`` calls made within: called as it ends, dropped if it raises (the attempt
    failed: the batch is handled again, and calls them again)."""
    pending: list[Callable[[], object]] = []
    token = _WHEN_DONE.set(pending)
    try:
        yield
    finally:
        _WHEN_DONE.reset(token)
    for take in pending:
        try:
            take()
        except Exception as exc:  # the batch is done: a count that fails must not send it again
            metrics.TIMER_FAILURES.labels("when_done").inc()
            log.error("batch.count_failed", error=type(exc).__name__, detail=str(exc)[:200])


class Publisher:
    """Collects sends for one batch and waits until the broker has them all (acks=all). ``agent``:
    whose batch it is, marked retrying while the broker keeps it waiting (``DELIVERY_PATIENCE_S``)."""

    def __init__(self, deadletter: faust.TopicT, agent: str | None = None) -> None:
        self._deadletter = deadletter
        self._agent = agent
        self._pending: list[asyncio.Future[Any]] = []
        self._letters: list[tuple[str, ...]] = []  # each dead letter's reasons, among ``_pending``

    async def send(self, topic: faust.TopicT, key: str | bytes | None, value: bytes) -> None:
        """Hand one record to the app's producer (delivery is awaited by ``flush``). Straight to the
        transport's producer: Vigil's topics are raw bytes, and ``Topic.send`` would add a
        ``FutureMessage``, codec lookups and Faust's sensor calls per record, about half of a
        send's CPU in the worker (docs/performance.md, run J)."""
        k = key.encode() if isinstance(key, str) else key
        fut = await topic.app.producer.send(topic.get_topic_name(), k, value, None, None, None)
        self._pending.append(fut)  # type: ignore[arg-type]

    async def dead_letter(
        self, event: faust.EventT | None, rejected: Rejected, budget: int = MAX_DEAD_LETTER_BYTES
    ) -> None:
        """Publish ``rejected`` on the dead-letter topic, with ``event``'s message as its source
        (or the source ``rejected`` already carries), under the original key (or its digest, when
        too long: ``dead_letter_key``). The record is at most ``budget`` bytes: a larger original is
        carried truncated, with its size and SHA-256. Counted once delivered (``flush``) and its
        batch done (``when_done``), once under each of its reasons (``Rejected.reasons``)."""
        if event is not None:
            rejected = rejected.at(source_of(event))
        key = dead_letter_key(rejected.source.key if rejected.source else None)
        record = DeadLetter.of(rejected, datetime.now(UTC), budget=budget)
        await self.send(self._deadletter, key, record.model_dump_json().encode())
        self._letters.append(rejected.reasons)

    async def flush(self) -> None:
        """Wait for every record handed over; raise the first failure. The dead letters are counted
        here, once the broker has them all (and their batch is done: ``when_done``): a batch retried
        or split after a failed flush sends its letters again, and counting them as they were handed
        over counted one input two or more times, or a letter never delivered. The wait is bounded
        by the producer's request timeout (``agents.app``), which fails the records it could not
        deliver; past ``DELIVERY_PATIENCE_S`` the agent is marked retrying meanwhile."""
        pending, self._pending = self._pending, []
        letters, self._letters = self._letters, []
        if pending:
            # every future is awaited, so that none is left with an exception nobody retrieved
            delivered = asyncio.gather(*pending, return_exceptions=True)
            done, _ = await asyncio.wait({delivered}, timeout=DELIVERY_PATIENCE_S)
            if not done:
                if self._agent is not None:
                    AGENTS.retrying(self._agent)  # cleared as its batch ends (run_batch)
                log.warning(
                    "batch.delivery_waiting", agent=self._agent, records=len(pending), waited_s=DELIVERY_PATIENCE_S
                )
            results = await delivered
            failed = next((r for r in results if isinstance(r, BaseException)), None)
            if failed is not None:
                raise failed
        if letters:
            when_done(partial(metrics.count_dead_letters, letters))


def source_of(event: faust.EventT) -> Source:
    m = event.message
    return Source(
        topic=m.topic,
        partition=m.partition,
        offset=m.offset,
        key=m.key,
        original=m.value,
        replay_of=replay_of(getattr(m, "headers", None)),
    )


def replay_of(headers: Any) -> str | None:
    """The ``vigil-replay-of`` header of a record ``vigil deadletters replay`` sent, else None:
    kept on the letter of an input refused again, so that an operator sees the replay did not help.
    Faust gives headers as a list of (name, value) pairs or as a mapping."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    for name, value in pairs:
        if name == REPLAY_HEADER and isinstance(value, bytes | str):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            return text[:MAX_REPLAY_OF_CHARS]
    return None


BatchHandler = Callable[[Sequence[faust.EventT], Publisher], Awaitable[object]]


async def run_batch(batch: Sequence[faust.EventT], handler: BatchHandler, deadletter: faust.TopicT, what: str) -> None:
    """Process one batch so that it is fully handled before Faust acks it: transient failures
    are retried; the broker refusing its outputs (an ACL, a policy: ``output_refusal``) blocks it,
    retried until mended; an unexpected exception is narrowed down to the offending event(s), which
    go to the dead letters (reason ``internal``) while the rest of the batch is processed normally.
    Never raises (but for a cancel): an agent that raised would be restarted by Faust with its batch
    acked and committed, the events behind the failing one never handled (issue 16).

    A shutdown or rebalance cancels the agent while it awaits; ``take_events`` then acks the whole
    batch as the generator closes. So the batch is shielded and finished first: cancelling it
    half-way would let its offsets be committed with its outputs or Redis writes never done."""
    task = asyncio.ensure_future(_handle_batch(batch, handler, deadletter, what))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise
    finally:
        if task.done():
            AGENTS.finished(what)
            # (topic, partition): equal to Faust's TP, a named tuple of the two
            PROGRESS.handled((event.message.topic, event.message.partition) for event in batch)


# a failed batch or dead letter is tried again after 0.2 s, 0.4 s, ... then every 5 s
FIRST_RETRY_S, LAST_RETRY_S = 0.2, 5.0


async def _retry_after(delay: float) -> float:
    """Wait ``delay``; the wait before the next try (doubled, at most ``LAST_RETRY_S``)."""
    await asyncio.sleep(delay)
    return min(delay * 2, LAST_RETRY_S)


async def _handle_batch(
    batch: Sequence[faust.EventT], handler: BatchHandler, deadletter: faust.TopicT, what: str
) -> None:
    delay = FIRST_RETRY_S
    while True:
        publisher = Publisher(deadletter, what)
        try:
            with taken_when_done():  # its counts, once: not those of an attempt that failed
                await handler(batch, publisher)
                await publisher.flush()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_stopping(exc):  # the producer is closed: nothing will be sent, the batch stays uncommitted
                log.warning("batch.given_up", agent=what, reason="the worker is stopping")
                raise asyncio.CancelledError from exc
            if hint := output_refusal(exc):
                # no input is at fault and none is dead-lettered: the batch waits, not ready, until
                # the operator mends the broker's side
                AGENTS.blocked(what)
                refused = sent_error(exc)
                log.error(
                    "batch.refused",
                    agent=what,
                    error=type(refused).__name__,
                    detail=str(refused)[:200],
                    hint=hint,
                    retry_in_s=delay,
                )
                delay = await _retry_after(delay)
                continue
            if is_transient(exc):
                AGENTS.retrying(what)
                log.warning("batch.retry", agent=what, error=type(exc).__name__, retry_in_s=delay)
                delay = await _retry_after(delay)
                continue
            if len(batch) > 1:
                log.error("batch.poison", agent=what, events=len(batch), exc_info=exc)
                for event in batch:
                    await _handle_batch([event], handler, deadletter, what)
                return
            m = batch[0].message
            log.error("event.poison", agent=what, topic=m.topic, partition=m.partition, offset=m.offset, exc_info=exc)
            await _dead_letter_until_sent(
                batch[0], Rejected("internal", f"{what}: {type(exc).__name__}"), deadletter, what
            )
            return


# A dead letter without the original's bytes (its size and SHA-256 only): what is sent when the
# broker refuses the full record (a topic whose max.message.bytes is under MAX_DEAD_LETTER_BYTES).
MINIMAL_DEAD_LETTER_BYTES = 0


async def _dead_letter_until_sent(event: faust.EventT, rejected: Rejected, deadletter: faust.TopicT, what: str) -> None:
    """The last resort for one event: its dead letter is sent, or the agent waits (not ready) until
    it can be. Never drop it, never let the batch be acked without it."""
    budget, delay = MAX_DEAD_LETTER_BYTES, FIRST_RETRY_S
    while True:
        publisher = Publisher(deadletter, what)
        try:
            await publisher.dead_letter(event, rejected, budget=budget)
            await publisher.flush()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if is_stopping(exc):  # the producer is closed: the letter's batch stays uncommitted
                raise asyncio.CancelledError from exc
            transient, hint = is_transient(exc), output_refusal(exc)
            if not transient and hint is None and budget != MINIMAL_DEAD_LETTER_BYTES:
                log.error("deadletter.refused", agent=what, error=type(exc).__name__, retry="without the original")
                budget = MINIMAL_DEAD_LETTER_BYTES
                continue
            (AGENTS.retrying if transient else AGENTS.blocked)(what)
            log.error("deadletter.failed", agent=what, error=type(exc).__name__, retry_in_s=delay, hint=hint)
            delay = await _retry_after(delay)
