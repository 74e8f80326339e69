"""The fetch stall behind the rare whole-worker pauses (docs/performance.md), reproduced against
the embedded broker with aiokafka alone.

aiokafka keeps one fetch in flight per broker and, once a partition's records have sat 100 ms
unconsumed in its buffer (a worker busy with a batch), sends a fetch for the *other* partitions
alone. If those are quiet (a pipeline worker's alert acknowledgements), the broker holds that fetch
up to ``fetch_max_wait_ms`` (Faust passes 1,500) and the busy partition's new records wait behind
it. This measures that wait for each given ``fetch_max_wait_ms``, and with ``WAIT:PREFETCH`` for
the workers' fetcher (``agents.transport``: a fetch sent while records are buffered waits at most
PREFETCH ms):

    python -m vigil.bench.fetch_stall 1500 100 1500:50   # seconds per setting, then a JSON line
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import uuid

from vigil.infra.settings import Settings, get_settings

BUFFERED_S = 0.3  # how long the busy partition's records sit unconsumed, as behind a worker's batch
SETTING = re.compile(r"(\d+)(?::(\d+))?")


def parse_settings(args: list[str]) -> list[tuple[int, int | None]]:
    """``WAIT`` or ``WAIT:PREFETCH`` (milliseconds) per argument; ValueError names a bad one."""
    parsed = []
    for arg in args:
        match = SETTING.fullmatch(arg)
        if match is None:
            raise ValueError(f"{arg!r} is not WAIT or WAIT:PREFETCH in milliseconds (e.g. 1500 or 1500:50)")
        parsed.append((int(match[1]), int(match[2]) if match[2] else None))
    return parsed


def new_record_delay(settings: Settings, wait_ms: int, prefetch_wait_ms: int | None = None) -> float:
    """Seconds from producing a record on the busy partition to consuming it (with
    ``prefetch_wait_ms``: through the workers' fetcher, ``agents.transport``)."""
    import aiokafka
    from aiokafka.structs import TopicPartition

    from vigil.agents.transport import bound_prefetch_wait
    from vigil.infra.connect import kafka_bootstrap
    from vigil.infra.stack.topics import ensure_topics

    run = uuid.uuid4().hex[:8]
    busy, quiet = TopicPartition(f"vigil.bench.busy.{run}", 0), TopicPartition(f"vigil.bench.quiet.{run}", 0)
    ensure_topics(settings, (busy.topic, quiet.topic))
    bootstrap = kafka_bootstrap(settings)

    async def once() -> float:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap)
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=wait_ms)
        await producer.start()
        await consumer.start()
        if prefetch_wait_ms is not None:
            bound_prefetch_wait(consumer._fetcher, prefetch_wait_ms)
        try:
            for _ in range(50):
                await producer.send(busy.topic, b"x" * 200, partition=0)
            await producer.flush()
            consumer.assign([busy, quiet])
            consumer.seek(busy, 0)
            consumer.seek(quiet, 0)
            await asyncio.sleep(BUFFERED_S)
            await consumer.getmany(busy, timeout_ms=2000)
            t0 = time.monotonic()
            await producer.send_and_wait(busy.topic, b"new", partition=0)
            while True:
                got = await consumer.getmany(timeout_ms=20)
                if any(r.value == b"new" for records in got.values() for r in records):
                    return time.monotonic() - t0
        finally:
            await consumer.stop()
            await producer.stop()

    return asyncio.run(asyncio.wait_for(once(), timeout=30))


def main(args: list[str]) -> int:
    from vigil.infra.stack import stack_up

    try:
        settings_to_try = parse_settings(args or ["1500", "100", "1500:50"])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = get_settings()
    stack_up(settings)
    runs = []
    for wait_ms, prefetch_ms in settings_to_try:
        delay = round(new_record_delay(settings, wait_ms, prefetch_ms), 3)
        runs.append({"fetch_max_wait_ms": wait_ms, "prefetch_wait_ms": prefetch_ms, "delay_s": delay})
        shown = f"{wait_ms}" if prefetch_ms is None else f"{wait_ms}:{prefetch_ms}"
        print(f"fetch_max_wait_ms {shown}: the new record waited {delay:.3f} s", flush=True)
    print(json.dumps({"buffered_s": BUFFERED_S, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
