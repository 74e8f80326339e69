"""Worker runtime: the Redis store, the model bundle and the batcher, created once per worker
on first use inside the event loop, plus the publish helper that waits for delivery."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust
import numpy as np

from infra import metrics
from infra.logging import get_logger
from infra.redis import PatientStore, RedisHealth
from infra.settings import get_settings
from models.alerting import AlertPolicy
from models.batching import DynamicBatcher
from schemas.deadletter import DeadLetter, Rejected
from schemas.scores import ModelScore

log = get_logger(__name__)


@dataclass(frozen=True)
class ModelInput:
    window: np.ndarray
    static: dict[str, float]


class Runtime:
    def __init__(self) -> None:
        settings = get_settings()
        self.settings = settings
        self.health = RedisHealth()
        password = None
        self.store = PatientStore(self._redis_url(), settings.redis.ttl_s, self.health, password=password)
        self.bundle = _load_bundle()
        self.batcher: DynamicBatcher[ModelInput, list[ModelScore]] = DynamicBatcher(
            self._infer, settings.batch.max_batch_size, settings.batch.max_queue_delay_ms,
            on_batch=_observe_batch,
        )
        self.policy = AlertPolicy(
            exit_ratio=settings.alerts.exit_ratio, suppress_s=settings.alerts.suppress_s,
            escalate_after_s=settings.alerts.escalate_after_s,
        )

    def _redis_url(self) -> str:
        s = self.settings.redis
        return s.url or f"redis://127.0.0.1:{s.embedded_port}/0"

    def _infer(self, inputs: Sequence[ModelInput]) -> list[list[ModelScore]]:
        if self.bundle is None:
            return [[] for _ in inputs]
        results = self.bundle.score([i.window for i in inputs], [i.static for i in inputs],
                                    buckets=self.settings.batch.buckets)
        return [list(getattr(r, "models", r)) for r in results]


def _observe_batch(size: int, seconds: float) -> None:
    metrics.BATCH_SIZE.observe(size)
    metrics.INFERENCE_SECONDS.observe(seconds)


def _load_bundle() -> Any | None:
    try:
        from models.registry import load_bundle
    except ImportError:
        log.warning("models.unavailable", reason="models.registry not importable; rule scores only")
        return None
    try:
        bundle = load_bundle()
    except Exception as exc:  # no artifacts yet: serve rule scores, say so loudly
        log.warning("models.unavailable", reason=type(exc).__name__, detail=str(exc)[:200])
        return None
    log.info("models.loaded", providers=getattr(bundle, "providers", None), version=getattr(bundle, "version", None))
    return bundle


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime()
    return _runtime


class Publisher:
    """Collects sends for one batch and waits until the broker has them all (acks=all)."""

    def __init__(self) -> None:
        self._pending: list[asyncio.Future[Any]] = []

    async def send(self, topic: faust.TopicT, key: str | bytes | None, value: bytes) -> None:
        k = key.encode() if isinstance(key, str) else key
        fut = await topic.send(key=k, value=value, force=True)
        self._pending.append(fut)  # type: ignore[arg-type]

    async def dead_letter(self, topic: faust.TopicT, rejected: Rejected, original: bytes | None,
                          source_topic: str, partition: int | None, offset: int | None,
                          key: bytes | None = None) -> None:
        record = DeadLetter(
            reason=rejected.reason, detail=rejected.detail, source_topic=source_topic,
            partition=partition, offset=offset, at=datetime.now(UTC),
            original_b64=DeadLetter.encode(original or b""),
        )
        metrics.DEAD_LETTERS.labels(rejected.reason).inc()
        await self.send(topic, key, record.model_dump_json().encode())

    async def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            await asyncio.gather(*pending)
