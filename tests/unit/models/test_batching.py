import asyncio
import threading

import pytest

from vigil.models.batching import DynamicBatcher


def test_coalesces_concurrent_callers_and_returns_in_order() -> None:
    seen_sizes: list[int] = []
    loop_threads: set[str] = set()

    def infer(items):
        seen_sizes.append(len(items))
        loop_threads.add(threading.current_thread().name)
        return [x * 10 for x in items]

    async def main():
        b = DynamicBatcher(infer, max_batch_size=8, max_queue_delay_ms=20)
        results = await asyncio.gather(*(b.infer_many([i, i + 100]) for i in range(10)))
        await b.close()
        return results, b.stats

    results, stats = asyncio.run(main())
    assert results == [[i * 10, (i + 100) * 10] for i in range(10)]
    assert max(seen_sizes) == 8 and sum(seen_sizes) == 20  # batches capped at max_batch_size
    assert all(name.startswith("vigil-infer") for name in loop_threads)  # off the event loop
    assert stats.items == 20


def test_a_failing_batch_fails_its_callers_only() -> None:
    calls = {"n": 0}

    def infer(items):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("poison")
        return items

    async def main():
        b = DynamicBatcher(infer, max_batch_size=4, max_queue_delay_ms=1)
        with pytest.raises(ValueError):
            await b.infer_many([1])
        ok = await b.infer_many([2, 3])
        await b.close()
        return ok

    assert asyncio.run(main()) == [2, 3]


def test_a_result_list_of_the_wrong_length_fails_its_callers_not_the_batcher() -> None:
    """Results that do not pair with the inputs raised out of the batcher's task: its callers waited
    forever (the scoring step holding the worker's alert lock), and every later call too."""
    calls = {"n": 0}

    def infer(items):
        calls["n"] += 1
        return items[:-1] if calls["n"] == 1 else items

    async def main():
        b = DynamicBatcher(infer, max_batch_size=4, max_queue_delay_ms=1)
        with pytest.raises(ValueError, match="2 results for 3 inputs"):
            await asyncio.wait_for(b.infer_many([1, 2, 3]), 5)
        ok = await asyncio.wait_for(b.infer_many([4]), 5)
        await b.close()
        return ok

    assert asyncio.run(main()) == [4]


def test_large_batches_run_on_the_loop_thread_small_ones_in_the_inference_thread() -> None:
    threads: list[tuple[int, str]] = []

    def infer(items):
        threads.append((len(items), threading.current_thread().name))
        return items

    async def main():
        b = DynamicBatcher(infer, max_batch_size=64, max_queue_delay_ms=0, inline_from=32)
        await b.infer_many(list(range(40)))  # a backlog's batch: on the loop
        await b.infer_many(list(range(5)))  # a live ward's batch: in the thread
        await b.close()
        return threading.current_thread().name

    loop_thread = asyncio.run(main())
    assert threads == [(40, loop_thread), (5, threads[1][1])]
    assert threads[1][1].startswith("vigil-infer")
