"""The ceiling: a bare Faust agent that only reads and forwards events, with the same batching
(``agents.runtime.batches``), the same consumer (``agents.transport``), the same delivery
guarantee (wait for acks=all before the batch is acked) and the same broker as the Vigil pipeline.
Run: ``python -m vigil.bench.baseline``."""

from __future__ import annotations

import asyncio

import faust

from vigil.agents.app import faust_config
from vigil.agents.runtime import batches
from vigil.agents.transport import PrefetchWaitApp
from vigil.bench.harness import BASELINE_GROUP, BASELINE_IN, BASELINE_OUT
from vigil.infra.settings import get_settings

settings = get_settings()
app = PrefetchWaitApp(BASELINE_GROUP, **faust_config(settings))  # the workers' consumer too
source = app.topic(BASELINE_IN, key_type=bytes, value_type=bytes)
sink = app.topic(BASELINE_OUT, key_type=bytes, value_type=bytes)


@app.agent(source)
async def forward(stream: faust.StreamT) -> None:
    async for batch in batches(stream):  # the agents' own batching, so the two stay the same
        futures = [await sink.send(key=e.message.key, value=e.message.value, force=True) for e in batch]
        await asyncio.gather(*futures)


if __name__ == "__main__":
    faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()
