"""Redis dies for ~20 s mid-stream (kill -9, then restarted on the same port and AOF directory)."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import free_port, wait_for
from tests.reliability.helpers import (
    PacedProducer,
    committed_offsets,
    end_offsets,
    event_payloads,
    report,
    ward_stream,
)
from vigil.infra.health import read_health_file
from vigil.infra.stack import StackPaths
from vigil.infra.stack.processes import pid_alive
from vigil.infra.stack.redis_server import start_redis

pytestmark = pytest.mark.reliability

OUTAGE_S = 20.0


def _readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=3) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def test_redis_outage_blocks_commits_reports_not_ready_and_catches_up(
    stack, stack_settings, started_worker, producer, reader, redis_admin, results_dir, tmp_path
) -> None:
    health_file, health_port = tmp_path / "health.json", free_port()
    worker = started_worker(
        "redis-outage",
        env={
            "VIGIL_HEALTH_FILE": str(health_file),
            "VIGIL_HEALTH_PORT": str(health_port),
            # the outage outlasts the watchdog's times (agents/progress.py): a Redis outage must
            # never make a worker leave its group (the fetcher keeps filling the stream's buffer
            # through this one, so its partitions do not even count as stalled)
            "VIGIL_WATCHDOG__STALL_AFTER_S": "3",
            "VIGIL_WATCHDOG__EXIT_AFTER_S": "6",
        },
    )
    assert wait_for(lambda: (read_health_file(health_file) or {}).get("ready") is True, timeout=20)
    assert _readyz(health_port) == 200
    r = reader()
    events = ward_stream("redis", patients=50, hours=12)  # 3,000 events over ~30 s
    ids = {e.event_id for e in events}
    stream = PacedProducer(producer, event_payloads(events), rate_per_s=100).start()
    assert wait_for(lambda: len(ids & r.snapshot().scored_ids) >= 400, timeout=60)
    keys_before = redis_admin.dbsize()

    paths = StackPaths(stack_settings.home)
    redis_pid = pid_alive(paths.redis_pid)
    assert redis_pid
    os.kill(redis_pid, signal.SIGKILL)
    down_at = time.monotonic()
    # not ready within a few seconds (the probe pings every second)
    assert wait_for(lambda: (read_health_file(health_file) or {}).get("ready") is False, timeout=10)
    not_ready_after_s = time.monotonic() - down_at
    assert _readyz(health_port) == 503
    time.sleep(2.5)  # batches finished before the kill have had their (1 s) commit
    # the ingest agent consumes vigil.events.raw and commits only after Redis took the state
    committed_early = committed_offsets(stack_settings, "vigil.events.raw")
    scored_early = len(ids & r.snapshot().scored_ids)
    time.sleep(max(OUTAGE_S - (time.monotonic() - down_at) - 1.0, 0))
    committed_late = committed_offsets(stack_settings, "vigil.events.raw")
    ends_late = end_offsets(stack_settings, "vigil.events.raw")
    scored_late = len(ids & r.snapshot().scored_ids)
    lag_during = sum(ends_late[p] - committed_late.get(p, 0) for p in ends_late)
    assert worker.poll() is None, "the worker must not exit while Redis is away"

    start_redis(stack_settings)  # same port, same AOF directory
    up_at = time.monotonic()
    outage_s = up_at - down_at
    keys_after_restart = redis_admin.dbsize()
    assert wait_for(lambda: ids <= r.snapshot().scored_ids, timeout=120), "events lost across the Redis outage"
    caught_up_s = time.monotonic() - up_at
    assert wait_for(lambda: (read_health_file(health_file) or {}).get("ready") is True, timeout=10)
    stream.done.wait(timeout=30)
    rb = r.snapshot()
    counts = {
        "events": len(ids),
        "lost": len(ids - rb.scored_ids),
        "duplicate_score_mentions": rb.duplicates(ids),
        "outage_s": round(outage_s, 1),
        "not_ready_after_s": round(not_ready_after_s, 1),
        "caught_up_after_restart_s": round(caught_up_s, 1),
        "committed_moved_during_outage": committed_late != committed_early,
        "scored_during_outage": scored_late - scored_early,
        "lag_during_outage": lag_during,
        "redis_keys_before": keys_before,
        "redis_keys_after_restart": keys_after_restart,
        "worker_pid_before": worker.pid,
        "worker_alive_after": worker.poll() is None,
        "health_file": json.dumps(read_health_file(health_file)),
    }
    report(results_dir, "redis_outage", counts)
    # nothing whose state was not written is committed (offsets frozen), nothing scored meanwhile
    assert committed_late == committed_early
    assert scored_late == scored_early
    assert lag_during > 0
    assert counts["lost"] == 0
    assert worker.poll() is None  # same PID throughout: no crash loop
    assert _readyz(health_port) == 200
    assert keys_after_restart >= keys_before * 0.9, "AOF must bring the state back"
