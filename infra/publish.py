"""Publishing that an answer depends on: every record sent, and each acknowledged by the broker
(``acks=all``, ``infra.connect.kafka_producer``) before the caller answers its sender (the FHIR
intake's HTTP answer, the MLLP listener's ACK)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Record = tuple[str, bytes | None, bytes]  # topic, key, value


def send_and_wait(producer: Any, records: Sequence[Record], timeout_s: float = 15.0) -> None:
    """Send ``records`` through a kafka-python producer and wait until the broker has every one;
    raises the producer's error (``KafkaError``) when it does not."""
    futures = [producer.send(topic, key=key, value=value) for topic, key, value in records]
    producer.flush(timeout=timeout_s)
    for future in futures:
        future.get(timeout=timeout_s)
