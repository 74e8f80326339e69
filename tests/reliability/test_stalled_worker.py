"""A worker that stops reading while it stays in its consumer group, made to happen by
tests/reliability/faults: its consumer stops fetching one of its partitions (faust-streaming/faust#629),
or its event loop enters a call that never returns while Kafka's heartbeats run on. Either way it says
so, is not ready, and exits 75; the events behind it are scored by the workers that take its
partitions over, none lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.reliability.helpers import end_offsets, event_payloads, report, ward_stream
from vigil.infra.health import read_health_file
from vigil.infra.workers import EXIT_LEFT_GROUP, worker_env

pytestmark = pytest.mark.reliability

FAULTS = Path(__file__).parent / "faults"


def _log_records(logs: list[Path], event: str) -> list[dict]:
    out = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if f'"{event}"' in line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
    return out


def _faulty_worker(stack_home, started_worker, name: str, fault: dict[str, str], health: Path):  # type: ignore[no-untyped-def]
    """A worker loading ``faults/`` with the ``fault`` variables, the watchdog at 10 s / 25 s, its
    readiness in ``health``; with its log files."""
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(FAULTS), os.environ.get("PYTHONPATH")])),
        "VIGIL_WATCHDOG__STALL_AFTER_S": "10",
        "VIGIL_WATCHDOG__EXIT_AFTER_S": "25",
        "VIGIL_HEALTH_FILE": str(health),
        **fault,
    }
    before = set((stack_home / "logs").glob(f"{name}-*.log"))
    worker = started_worker(name, env)
    return worker, sorted(set((stack_home / "logs").glob(f"{name}-*.log")) - before)


def _stalled_on_card(settings, pid: int) -> int | None:  # type: ignore[no-untyped-def]
    """The worker's ``stalled_partitions`` as ``vigil workers --json`` reads its card from Redis
    (None unless the table above the JSON says so too)."""
    done = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "workers", "--json"],
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0 or "with events waiting that it does not read" not in " ".join(done.stdout.split()):
        return None
    cards = json.loads(done.stdout.strip().splitlines()[-1])["workers"]
    return next((c["stalled_partitions"] for c in cards if c["pid"] == pid), None)


def test_a_worker_that_stops_reading_a_partition_leaves_and_nothing_is_lost(
    stack, stack_settings, stack_home, started_worker, spawn, producer, reader, results_dir, tmp_path
) -> None:
    flag, chosen, health = tmp_path / "stall", tmp_path / "stalled-partition", tmp_path / "health.json"
    fault = {"VIGIL_TEST_STALL_FLAG": str(flag), "VIGIL_TEST_STALL_CHOSEN": str(chosen)}
    worker, logs = _faulty_worker(stack_home, started_worker, "stall-a", fault, health)
    r = reader()
    flag.touch()
    assert wait_for(chosen.exists, timeout=30), "the fault never took hold of a partition"
    topic, partition = chosen.read_text().split()
    ends_before = end_offsets(stack_settings, topic)

    events = ward_stream("stall", patients=60, hours=4)
    ids = {e.event_id for e in events}
    for key, value in event_payloads(events):
        producer.send(topic, key=key, value=value)
    producer.flush()
    sent_at = time.monotonic()
    behind = end_offsets(stack_settings, topic)[int(partition)] - ends_before[int(partition)]
    assert behind > 0, "no event of the stream landed on the stalled partition"

    assert wait_for(lambda: (read_health_file(health) or {}).get("ready") is False, timeout=40), (
        "the worker stayed ready with a partition stalled"
    )
    not_ready_s = time.monotonic() - sent_at
    stalled = _log_records(logs, "consumer.stalled")
    # not ready for another cause (it stopped, a Redis write retried...): the file and the log say which
    why = [*_log_records(logs, "worker.readiness"), *_log_records(logs, "worker.stopping"), read_health_file(health)]
    assert [(s["topic"], s["partition"]) for s in stalled] == [(topic, int(partition))], why
    # its fleet card says so (the dashboard's indicator, `vigil workers`)
    assert wait_for(lambda: _stalled_on_card(stack_settings, worker.pid) == 1, timeout=12, interval=1.0)
    # a fetch already in flight when the fault took hold may have brought the stream's first records
    assert 0 < stalled[0]["waiting"] <= behind
    assert worker.wait(timeout=60) == EXIT_LEFT_GROUP, "the worker did not leave the group"
    exited_s = time.monotonic() - sent_at
    assert _log_records(logs, "worker.leaving")
    spawn("stall-b")  # the supervisor's restart; the session's other workers may take it first

    assert wait_for(lambda: ids <= r.snapshot().scored_ids, timeout=150), "events behind the stall lost"
    scored_s = time.monotonic() - sent_at
    rb = r.snapshot()
    counts = {
        "events": len(ids),
        "behind_the_stall": behind,
        "waiting_when_stalled": stalled[0]["waiting"],
        "sent_to_not_ready_s": round(not_ready_s, 1),
        "sent_to_exit_s": round(exited_s, 1),
        "sent_to_all_scored_s": round(scored_s, 1),
        "lost": len(ids - rb.scored_ids),
        "events_mentioned_twice_or_more": sum(1 for i in ids if rb.score_event_counts[i] > 1),
    }
    report(results_dir, "partition_stall", counts)
    assert counts["lost"] == 0


def test_a_worker_whose_event_loop_never_returns_ends_and_nothing_is_lost(
    stack, stack_settings, stack_home, started_worker, spawn, producer, reader, results_dir, tmp_path
) -> None:
    flag, health = tmp_path / "block", tmp_path / "health.json"
    worker, logs = _faulty_worker(
        stack_home, started_worker, "blocked-a", {"VIGIL_TEST_BLOCK_LOOP_FLAG": str(flag)}, health
    )
    assert wait_for(lambda: (read_health_file(health) or {}).get("ready") is True, timeout=20)
    r = reader()
    flag.touch()
    assert wait_for(lambda: not flag.exists(), timeout=10), "the fault never blocked the loop"
    blocked_at = time.monotonic()
    events = ward_stream("blocked", patients=60, hours=4)
    ids = {e.event_id for e in events}
    for key, value in event_payloads(events):
        producer.send("vigil.events.raw", key=key, value=value)
    producer.flush()

    assert wait_for(lambda: (read_health_file(health) or {}).get("ready") is False, timeout=20), (
        "the worker stayed ready with its event loop blocked"
    )
    not_ready_s = time.monotonic() - blocked_at
    # its card says its partitions are not read, from the watching thread (the dashboard's header)
    assert wait_for(lambda: (_stalled_on_card(stack_settings, worker.pid) or 0) >= 1, timeout=12, interval=1.0)
    assert worker.wait(timeout=60) == EXIT_LEFT_GROUP, "the worker did not end"
    exited_s = time.monotonic() - blocked_at
    (blocked,) = _log_records(logs, "worker.loop_blocked")
    assert any("sitecustomize.py" in frame for frame in blocked["stack"]), blocked["stack"]  # where it is stuck
    assert _log_records(logs, "worker.leaving")
    spawn("blocked-b")  # the supervisor's restart; the session's other workers may take it first

    assert wait_for(lambda: ids <= r.snapshot().scored_ids, timeout=150), "events lost behind the blocked loop"
    scored_s = time.monotonic() - blocked_at
    rb = r.snapshot()
    counts = {
        "events": len(ids),
        "blocked_to_not_ready_s": round(not_ready_s, 1),
        "blocked_to_exit_s": round(exited_s, 1),
        "blocked_to_all_scored_s": round(scored_s, 1),
        "lost": len(ids - rb.scored_ids),
        "events_mentioned_twice_or_more": sum(1 for i in ids if rb.score_event_counts[i] > 1),
    }
    report(results_dir, "event_loop_blocked", counts)
    assert counts["lost"] == 0
