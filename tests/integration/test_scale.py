"""Scale-out is Kafka's: two workers on a multi-partition topic split the load, and no event is
lost or scored twice across the rebalances (a second worker joins, then the first leaves)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import unique_patient, wait_for
from vigil.schemas import topics
from vigil.schemas.events import PatientEvent

pytestmark = pytest.mark.integration


def test_two_workers_split_partitions_without_loss_or_double_scoring(
    stack, stack_settings, stack_home, spawn, producer, reader
):
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
            _, assignment = _group(stack_settings)
            # (the session's shared worker may be a member too)
            assert len(assignment) >= 2, "both workers are members of the consumer group"
            owned = list(assignment.values())
            # the load splits: at least two workers own partitions (Faust's assignor may leave the
            # session's shared worker, a third member, without any)
            assert sum(1 for o in owned if o) >= 2, f"partitions of {topics.EVENTS_RAW} per member: {owned}"
            every = [p for o in owned for p in o]
            assert len(every) == len(set(every)), f"each partition has exactly one owner: {owned}"
            first.terminate()  # leaves: its partitions move to the other worker
        time.sleep(0.0005)
    producer.flush()
    if not wait_for(lambda: ids <= r.snapshot().scored_ids, timeout=180):
        pytest.fail(f"events not scored across rebalances: {_diagnosis(stack_settings, stack_home, ids, r)}")
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


def _group(settings) -> tuple[str | None, dict[str, list[int]]]:  # type: ignore[no-untyped-def]
    """The workers' consumer group: its state and each member's partitions of vigil.events.raw."""
    from vigil.infra.connect import kafka_admin

    admin = kafka_admin(settings)
    try:
        group = admin.describe_groups([settings.app_id])[settings.app_id]
    finally:
        admin.close()
    assignment = {
        m["member_id"]: sorted(
            p
            for tp in m["member_assignment"]["assigned_partitions"]
            if tp["topic"] == topics.EVENTS_RAW
            for p in tp["partitions"]
        )
        for m in group["members"]
    }
    return group.get("group_state"), assignment


def _diagnosis(settings, home: Path, ids: set[str], reader) -> str:  # type: ignore[no-untyped-def]
    """What a failure needs to tell a stall from a loss (one failure in CI, 6 December 2026, did not
    reproduce): the events not scored, what the group still has to read (0 with events unscored:
    offsets committed past them), each member's partitions, and the workers' last log lines but the batches'."""
    from vigil.infra.backlog import group_backlog

    missing = ids - reader.snapshot().scored_ids
    lines = [
        f"{len(missing)} of {len(ids)} events not scored; the group has "
        f"{group_backlog(settings, settings.app_id, topics.EVENTS_RAW)} records of {topics.EVENTS_RAW} left to read"
    ]
    state, assignment = _group(settings)
    lines.append(f"group state {state}")
    lines += [f"member {member}: {partitions}" for member, partitions in assignment.items()]
    for log in sorted((home / "logs").glob("shared-worker*.log")) + sorted((home / "logs").glob("scale-*.log")):
        # not the one line per batch: the consumer's, the rebalances', the errors
        told = [line for line in log.read_text(errors="replace").splitlines() if not line.startswith('{"events": ')]
        last = told[-15:]
        lines += [f"--- {log.name}, its last {len(last)} lines but the batches':", *(x[:300] for x in last)]
    return "\n".join(lines)
