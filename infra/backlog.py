"""How many records of a topic a consumer group has not read yet (kafka-python admin + consumer).

A group with no committed offset on a partition starts from its beginning (the workers'
``auto_offset_reset`` is ``earliest``: nothing accepted is skipped), so that partition counts whole.
"""

from __future__ import annotations

from vigil.infra.connect import kafka_consumer
from vigil.infra.settings import Settings


def group_backlog(settings: Settings, group: str, topic: str) -> int:
    """Records of ``topic`` that ``group`` would still have to read (0 when the topic is absent)."""
    from kafka import TopicPartition

    # a consumer with the group's id that never subscribes: it fetches the group's committed offsets
    # without joining the group (no rebalance for the workers in it)
    consumer = kafka_consumer(settings, group_id=group, enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not parts:
            return 0
        begin, end = consumer.beginning_offsets(parts), consumer.end_offsets(parts)
        total = 0
        for tp in parts:
            committed = consumer.committed(tp)
            start = begin[tp] if committed is None else max(committed, begin[tp])
            total += max(0, end[tp] - start)
        return total
    finally:
        consumer.close(autocommit=False)
