"""Dynamic batching (Triton's idea): coalesce inference requests from many patients and
partitions into one batch of up to ``max_batch_size``, waiting at most ``max_queue_delay_ms``
for stragglers, and hand each caller back its own results, in order.

Where the batch runs: a batch of at least ``inline_from`` items runs on the event loop's own thread,
a smaller one (or every one, ``inline_from=None``) in an inference thread. A Vigil worker runs every
batch on the loop (``inline_from`` 1): one scoring agent submits whole ``take()`` batches, nothing
else on the loop is waiting for the batch, and in a thread the inference and the loop (Faust, the
Kafka and Redis clients) only take turns on the GIL: the median scoring batch at 1,000 events/s
(~35 events, ~6 patients) spent 11 ms in inference in the thread against 5 ms on the loop, and
p99 fell from 131-188 ms to 86-162 ms (docs/performance.md, "Inference on the loop"). The thread
suits an inference that releases the GIL for long (a GPU provider, large batches with several
intra-op threads) beside other work on the loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

X = TypeVar("X")
Y = TypeVar("Y")


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    sizes: dict[int, int] = field(default_factory=dict)
    infer_s: float = 0.0

    def record(self, size: int, seconds: float) -> None:
        self.batches += 1
        self.items += size
        self.sizes[size] = self.sizes.get(size, 0) + 1
        self.infer_s += seconds


class DynamicBatcher(Generic[X, Y]):
    def __init__(
        self,
        infer: Callable[[Sequence[X]], Sequence[Y]],
        max_batch_size: int = 64,
        max_queue_delay_ms: float = 5.0,
        on_batch: Callable[[int, float], None] | None = None,
        inline_from: int | None = None,
    ):
        self._infer = infer
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_ms / 1000.0
        self.inline_from = inline_from
        self._queue: asyncio.Queue[tuple[X, asyncio.Future[Y]]] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-infer")
        self._task: asyncio.Task[None] | None = None
        self.stats = BatchStats()
        self._on_batch = on_batch

    def _ensure_started(self) -> asyncio.Queue[tuple[X, asyncio.Future[Y]]]:
        if self._queue is None or self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self._queue

    async def infer_many(self, items: Sequence[X]) -> list[Y]:
        """Submit items (e.g. one per patient) and wait for their results, in order."""
        if not items:
            return []
        queue = self._ensure_started()
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Y]] = []
        for item in items:
            fut: asyncio.Future[Y] = loop.create_future()
            queue.put_nowait((item, fut))
            futures.append(fut)
        return list(await asyncio.gather(*futures))

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            first = await queue.get()
            batch = [first]
            deadline = loop.time() + self.max_queue_delay_s
            while len(batch) < self.max_batch_size:
                # take what is already queued without waiting, then wait for stragglers
                try:
                    batch.append(queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except TimeoutError:
                    break
            inputs = [item for item, _ in batch]
            t0 = time.perf_counter()
            try:
                if self.inline_from is not None and len(inputs) >= self.inline_from:
                    results = self._infer(inputs)
                else:
                    results = await loop.run_in_executor(self._executor, self._infer, inputs)
                if len(results) != len(batch):  # zip would raise out of this task: every caller hung
                    raise ValueError(f"inference gave {len(results)} results for {len(batch)} inputs")
            except Exception as exc:  # a poison input must fail its callers, not the batcher
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            elapsed = time.perf_counter() - t0
            self.stats.record(len(batch), elapsed)
            if self._on_batch:
                self._on_batch(len(batch), elapsed)
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=False)
