"""Rebalance churn against the embedded stack: one worker stays while others join and leave the
group, cycle after cycle, and events flow all along. Every event must be scored, and the watchdogs
(agents/progress.py, agents/loop.py) must not fire on a healthy group: this is where a false
"stalled" would show, and where faust-streaming/faust#629 (a partition no longer fetched after a
rebalance) would, if it happened here.

    python -m vigil.bench.churn [CYCLES] [EXTRA]   # CYCLES of EXTRA workers joining and leaving; JSON last

The watchdog runs at 20 s / 40 s (defaults 60 / 180), so that a stall would show within a run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

WATCHDOG = {"VIGIL_WATCHDOG__STALL_AFTER_S": "20", "VIGIL_WATCHDOG__EXIT_AFTER_S": "40"}
WATCHED = ("consumer.stalled", "worker.leaving", "worker.loop_blocked", "timer.failed", "agent.crashed")


def watchdog_events(logs: list[Path]) -> dict[str, int]:
    """How often each watchdog line appears in the workers' JSON logs."""
    seen: Counter[str] = Counter()
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    event = json.loads(line).get("event")
                except ValueError:
                    continue
                if event in WATCHED:
                    seen[event] += 1
    return {event: seen[event] for event in WATCHED}


def main(args: list[str]) -> int:
    try:
        cycles, extra = (int(a) for a in (args + ["12", "1"])[:2])
        if cycles < 1 or extra < 1:
            raise ValueError
    except ValueError:
        print(f"error: {' '.join(args)!r}: give CYCLES and EXTRA as positive whole numbers, e.g. 12 1", file=sys.stderr)
        return 2
    from vigil.bench.harness import bench_worker_env
    from vigil.infra.connect import kafka_producer
    from vigil.infra.readback import TopicReader
    from vigil.infra.settings import get_settings
    from vigil.infra.stack import stack_up
    from vigil.infra.workers import spawn_worker, stop_worker
    from vigil.schemas import topics
    from vigil.schemas.events import PatientEvent

    settings = get_settings()
    stack_up(settings)
    run = uuid.uuid4().hex[:8]
    logs = settings.home / "logs" / f"churn-{run}"
    # several workers at once: none takes the parent's /metrics or readiness port (bench.harness)
    env = bench_worker_env(WATCHDOG)
    ids: set[str] = set()
    done = threading.Event()

    def produce() -> None:
        base = datetime.now(UTC) - timedelta(hours=48)
        minute = 0
        while not done.is_set():
            for k in range(50):
                pid = f"churn-{run}-{k:03d}"
                event = PatientEvent(
                    patient_id=pid,
                    observed_at=base + timedelta(minutes=minute),
                    kind="vital",
                    code="HR",
                    value=70 + minute % 30,
                    unit="/min",
                )
                ids.add(event.event_id)
                producer.send(topics.EVENTS_RAW, key=pid.encode(), value=event.model_dump_json().encode())
            minute += 1
            producer.flush()
            time.sleep(0.2)

    # each worker kept as it starts: the workers run in their own session, and a stop (Ctrl-C,
    # SIGTERM) anywhere below left them running
    started: list[subprocess.Popen[bytes]] = []
    reader = TopicReader(settings).start()
    try:
        stays = spawn_worker(settings, logs / "stays.log", env)
        started.append(stays)
        time.sleep(12)  # joined and scoring before the churn starts
        producer = kafka_producer(settings, linger_ms=5)
        t0 = time.monotonic()
        feeder = threading.Thread(target=produce, daemon=True)
        feeder.start()
        for cycle in range(cycles):
            joined = []
            for n in range(extra):
                joined.append(spawn_worker(settings, logs / f"c{cycle}-{n}.log", env))
                started.append(joined[-1])
            time.sleep(5 + cycle % 5)
            for worker in joined:
                stop_worker(worker)
            time.sleep(1 + cycle % 3)
        done.set()
        feeder.join()
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and not ids <= reader.snapshot().scored_ids:
            time.sleep(2)
        unscored = len(ids - reader.snapshot().scored_ids)
        alive = stays.poll() is None
    finally:
        done.set()
        for worker in started:
            stop_worker(worker)
        reader.stop()
    fired = watchdog_events(sorted(logs.glob("*.log")))
    summary = {
        "cycles": cycles,
        "workers_joining_each_cycle": extra,
        "events": len(ids),
        "unscored": unscored,
        "worker_that_stayed_alive": alive,
        "seconds": round(time.monotonic() - t0, 1),
        "watchdog": fired,
        "logs": str(logs),
    }
    print(json.dumps(summary))
    return 0 if unscored == 0 and alive and not any(fired.values()) else 1


if __name__ == "__main__":
    # SIGTERM and SIGHUP (`timeout`, a closed terminal) end the run as Ctrl-C does, through main's
    # ``finally``: their default action ended the process and left its workers running
    for stop in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, signal.default_int_handler)
    sys.exit(main(sys.argv[1:]))
