"""Scale-out is Kafka's: two workers on a multi-partition topic split the load, and no event is
lost or scored twice across the rebalances (a second worker joins, then the first leaves)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import unique_patient, wait_for
from vigil.schemas import topics
from vigil.schemas.events import PatientEvent

pytestmark = pytest.mark.integration


def test_two_workers_split_partitions_without_loss_or_double_scoring(
    stack, stack_settings, stack_home, spawn, producer, reader
):
    from vigil.infra.connect import kafka_admin

    r = reader()
    patients = [unique_patient("scale") for _ in range(40)]
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=30)
    events = []
    for hour in range(24):
        for i, pid in enumerate(patients):
            for code, value, unit in (
                ("HR", 70 + (hour + i) % 40, "/min"),
                ("Resp", 14 + hour % 8, "/min"),
                ("O2Sat", 95 + hour % 4, "%"),
            ):
                events.append(
                    PatientEvent(
                        patient_id=pid,
                        observed_at=base + timedelta(hours=hour, minutes=i % 50),
                        kind="vital",
                        code=code,
                        value=value,
                        unit=unit,
                    )
                )
    first = spawn("scale-a")
    ids = {e.event_id for e in events}
    half = len(events) // 2
    t0 = time.monotonic()
    for n, e in enumerate(events):
        producer.send(topics.EVENTS_RAW, key=e.patient_id.encode(), value=e.model_dump_json().encode())
        if n == half // 2:
            producer.flush()
            spawn("scale-b")  # joins: the group rebalances and the partitions split
        if n == half:
            producer.flush()
            time.sleep(8)  # let the second worker take its partitions
            admin = kafka_admin(stack_settings)
            members = admin.describe_groups(["vigil"])["vigil"]["members"]
            admin.close()
            # (the session's shared worker may be a member too)
            assert len(members) >= 2, "both workers are members of the consumer group"
            owned = [
                sorted(
                    p
                    for tp in m["member_assignment"]["assigned_partitions"]
                    if tp["topic"] == topics.EVENTS_RAW
                    for p in tp["partitions"]
                )
                for m in members
            ]
            # the load splits: at least two workers own partitions (Faust's assignor may leave the
            # session's shared worker, a third member, without any)
            assert sum(1 for o in owned if o) >= 2, f"partitions of {topics.EVENTS_RAW} per member: {owned}"
            every = [p for o in owned for p in o]
            assert len(every) == len(set(every)), f"each partition has exactly one owner: {owned}"
            first.terminate()  # leaves: its partitions move to the other worker
        time.sleep(0.0005)
    producer.flush()
    assert wait_for(lambda: ids <= r.snapshot().scored_ids, timeout=180), "no event lost across rebalances"
    time.sleep(2)
    rb = r.snapshot()
    duplicates = rb.duplicates(ids)
    print(
        json.dumps(
            {
                "events": len(ids),
                "scored": len(ids & rb.scored_ids),
                "duplicates": duplicates,
                "seconds": round(time.monotonic() - t0, 1),
            }
        )
    )
    assert duplicates == 0, f"{duplicates} events scored twice"
