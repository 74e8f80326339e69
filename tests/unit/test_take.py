"""``agents.take.take_growing`` on a Faust agent's in-memory test stream: it reads on while a batch
is processed (the next batch holds what arrived meanwhile, at most ``max_``), and acks a batch's
events only once the agent asks for the batch after it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from vigil.agents.take import take_growing


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


def run_agent(
    max_: int, within: float, scenario: Callable[..., Awaitable[None]], hold: int
) -> list[list[faust.EventT]]:
    """Run ``scenario(put, batches, gates)`` against an agent that blocks on gate i in its i-th batch
    (for the first ``hold`` batches)."""
    app = faust.App(f"take-test-{max_}-{hold}", broker="kafka://127.0.0.1:1", store="memory://")
    batches: list[list[faust.EventT]] = []

    async def main() -> None:
        gates = [asyncio.Event() for _ in range(hold)]

        @app.agent()
        async def agent(stream: faust.StreamT) -> None:
            async for batch in take_growing(stream, max_, within):
                batches.append(batch)
                if len(batches) <= hold:
                    await gates[len(batches) - 1].wait()

        async with agent.test_context() as a:

            async def put(*values: int) -> None:
                for v in values:
                    await a.put(v, wait=False)

            await scenario(put, batches, gates)

    asyncio.run(main())
    return batches


def values(batches: list[list[faust.EventT]]) -> list[list[Any]]:
    return [[e.value for e in b] for b in batches]


def test_events_that_arrived_during_a_batch_are_handed_over_at_once() -> None:
    handover_s: list[float] = []

    async def scenario(put, batches, gates) -> None:
        await put(0)
        await until(lambda: len(batches) == 1)
        await put(1, 2, 3, 4, 5, 6)  # while the agent is busy with [0]
        await asyncio.sleep(0.05)
        assert len(batches) == 1
        t0 = time.monotonic()
        gates[0].set()
        await until(lambda: len(batches) == 2)
        handover_s.append(time.monotonic() - t0)
        await until(lambda: sum(map(len, batches)) == 7)

    # a 2 s window: Faust's take_events waits it out before every batch that is not full (this
    # test fails with it)
    assert values(run_agent(10, 2.0, scenario, hold=1)) == [[0], [1, 2, 3, 4, 5, 6]]
    assert handover_s[0] < 1.0, "events that waited through a batch do not wait the window again"


def test_no_batch_holds_more_than_max() -> None:
    async def scenario(put, batches, gates) -> None:
        await put(0)
        await until(lambda: len(batches) == 1)
        await put(1, 2, 3, 4, 5, 6)
        await asyncio.sleep(0.05)
        gates[0].set()
        await until(lambda: sum(map(len, batches)) == 7)

    assert values(run_agent(4, 0.01, scenario, hold=1)) == [[0], [1, 2, 3, 4], [5, 6]]


def test_a_batch_from_an_empty_buffer_waits_the_window_for_its_companions() -> None:
    async def scenario(put, batches, gates) -> None:
        await put(0)
        await asyncio.sleep(0.01)
        await put(1, 2)
        await until(lambda: sum(map(len, batches)) == 3)

    assert values(run_agent(10, 0.2, scenario, hold=0)) == [[0, 1, 2]]


def test_events_are_acked_only_after_their_batch_was_processed() -> None:
    seen_while_busy: list[list[bool]] = []

    async def scenario(put, batches, gates) -> None:
        await put(0)
        await until(lambda: len(batches) == 1)
        await put(1, 2, 3)
        await asyncio.sleep(0.05)
        gates[0].set()
        await until(lambda: len(batches) == 2)  # the agent holds [1, 2, 3] (gate 1 closed)
        seen_while_busy.extend([e.message.acked for e in b] for b in batches)
        gates[1].set()
        await put(4)
        await until(lambda: len(batches) == 3)

    batches = run_agent(10, 0.01, scenario, hold=2)
    assert seen_while_busy == [[True], [False, False, False]]
    assert all(e.message.acked for b in batches[:2] for e in b)
