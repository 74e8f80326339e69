"""Why the workers' fetch wait is bounded (agents/transport.py), against the real broker.

aiokafka keeps one fetch in flight per broker and, once a partition's records have sat unconsumed
in its buffer for 100 ms (a worker busy with a batch), sends a fetch for the *other* partitions
alone. If those are quiet, the broker holds that fetch for the whole wait, and the busy partition's
next records wait behind it. With Faust's 1,500 ms that was a ~1.3 s stall of a worker that was
already behind; with the bounded wait it is at most the bound. The control with Faust's value shows
the test can fail (and would say so if a future aiokafka stopped holding the busy partition)."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiokafka
from aiokafka.structs import TopicPartition

from vigil.agents.transport import bound_fetch_wait
from vigil.infra.connect import kafka_bootstrap
from vigil.infra.settings import KafkaSettings
from vigil.infra.stack.topics import ensure_topics

FAUST_WAIT_MS = 1500  # what Faust's aiokafka driver passes


def _new_record_delay(settings, wait_ms: int) -> tuple[float, int]:
    """Seconds from producing a record on the busy partition to consuming it, after the previous
    records sat 300 ms in the consumer's buffer; and the wait the started fetcher used."""
    run = uuid.uuid4().hex[:8]
    busy, quiet = TopicPartition(f"vigil.test.busy.{run}", 0), TopicPartition(f"vigil.test.quiet.{run}", 0)
    ensure_topics(settings, (busy.topic, quiet.topic))
    bootstrap = kafka_bootstrap(settings)

    async def run_once() -> tuple[float, int]:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap)
        consumer = bound_fetch_wait(aiokafka.AIOKafkaConsumer(bootstrap_servers=bootstrap), wait_ms)
        await producer.start()
        await consumer.start()
        try:
            for _ in range(50):
                await producer.send(busy.topic, b"x" * 200, partition=0)
            await producer.flush()
            consumer.assign([busy, quiet])
            consumer.seek(busy, 0)
            consumer.seek(quiet, 0)
            await asyncio.sleep(0.3)  # a worker busy with a batch: the records wait in the buffer
            drained = await consumer.getmany(busy, timeout_ms=2000)
            assert sum(len(v) for v in drained.values()) == 50
            t0 = time.monotonic()
            await producer.send_and_wait(busy.topic, b"new", partition=0)
            while True:
                got = await consumer.getmany(timeout_ms=20)
                if any(r.value == b"new" for records in got.values() for r in records):
                    return time.monotonic() - t0, consumer._fetcher._fetch_max_wait_ms
        finally:
            await consumer.stop()
            await producer.stop()

    return asyncio.run(asyncio.wait_for(run_once(), timeout=30))


def test_a_busy_partition_is_not_held_behind_a_fetch_for_quiet_ones(stack, stack_settings) -> None:
    bounded = KafkaSettings().fetch_max_wait_ms
    delay, used = _new_record_delay(stack_settings, bounded)
    assert used == bounded
    assert delay < 0.75, f"a new event waited {delay:.2f} s behind a fetch for quiet partitions"
    faust_delay, _ = _new_record_delay(stack_settings, FAUST_WAIT_MS)
    assert faust_delay > 1.0, f"with Faust's wait the event came after {faust_delay:.2f} s: is the bound still needed?"
