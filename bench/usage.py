"""What the broker, Redis and the machine did while the bench ran: CPU seconds, Redis commands,
bytes written to the broker's log. Sampled before and after a measured phase; the difference,
divided by the events of the phase, is what docs/performance.md extrapolates to 10x and 100x.

Read from where it is cheap and honest: ``/proc`` for the embedded broker's and Redis' CPU and for
the machine's busy time, Redis ``INFO`` (the embedded stack's admin user), the brokers' log sizes
(``describe_log_dirs``). What cannot be read (an external cluster's processes, a Redis user without
``INFO``) is None, never guessed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from vigil.infra.connect import kafka_admin, redis_client
from vigil.infra.settings import Settings
from vigil.infra.stack.processes import StackPaths, pid_alive

_TICK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (and its threads) so far."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])
    return (total - idle) / _TICK, total / _TICK


@dataclass(frozen=True)
class Usage:
    at: float
    broker_cpu_s: float | None
    redis_cpu_s: float | None
    redis_commands: int | None
    log_bytes: int | None
    machine_busy_s: float
    machine_total_s: float
    workers_cpu_s: float | None


def _broker_pids(settings: Settings) -> list[int]:
    if settings.kafka.bootstrap:  # a cluster Vigil did not start: its processes are not ours to read
        return []
    return [pid for f in StackPaths(settings.home).node_pid_files() if (pid := pid_alive(f)) is not None]


def _redis_info(settings: Settings) -> dict[str, Any] | None:
    try:
        client = redis_client(settings, admin=not settings.redis.url)
        try:
            return dict(client.info())
        finally:
            client.close()
    except Exception:  # no INFO for this user, or no admin credentials: not measured
        return None


def _log_bytes(settings: Settings) -> int | None:
    try:
        admin = kafka_admin(settings, client_id="vigil-bench-usage")
        try:
            dirs = admin.describe_log_dirs()
        finally:
            admin.close()
    except Exception:  # an older broker or no DESCRIBE on the cluster: not measured
        return None
    return sum(p["partition_size"] for b in dirs for d in b["log_dirs"] for t in d["topics"] for p in t["partitions"])


def sample(settings: Settings, worker_pids: list[int] | None = None) -> Usage:
    brokers = [process_cpu_s(p) for p in _broker_pids(settings)]
    info = _redis_info(settings)
    workers = [process_cpu_s(p) for p in worker_pids or []]
    busy, total = machine_busy_s()
    return Usage(
        at=time.monotonic(),
        broker_cpu_s=sum(c for c in brokers if c is not None) if brokers else None,
        redis_cpu_s=float(info["used_cpu_user"]) + float(info["used_cpu_sys"]) if info else None,
        redis_commands=int(info["total_commands_processed"]) if info else None,
        log_bytes=_log_bytes(settings),
        machine_busy_s=busy,
        machine_total_s=total,
        workers_cpu_s=sum(c for c in workers if c is not None) if workers else None,
    )


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def usage_between(before: Usage, after: Usage, events: int) -> dict[str, Any]:
    """Rates over the phase and costs per 1,000 events (None where not measured)."""
    seconds = max(after.at - before.at, 1e-9)

    def per_s(v: float | None) -> float | None:
        return None if v is None else round(v / seconds, 3)

    def per_k(v: float | None) -> float | None:
        return None if v is None else round(v / events * 1000, 3)

    broker, redis_cpu = _delta(before.broker_cpu_s, after.broker_cpu_s), _delta(before.redis_cpu_s, after.redis_cpu_s)
    commands = _delta(before.redis_commands, after.redis_commands)
    log_bytes = _delta(before.log_bytes, after.log_bytes)
    workers = _delta(before.workers_cpu_s, after.workers_cpu_s)
    busy = after.machine_busy_s - before.machine_busy_s
    total = after.machine_total_s - before.machine_total_s
    return {
        "seconds": round(seconds, 2),
        "events": events,
        "machine_busy_share": round(busy / total, 3) if total > 0 else None,  # of all cores
        "broker_cores": per_s(broker),
        "broker_cpu_s_per_1000_events": per_k(broker),
        "broker_log_bytes_per_s": per_s(log_bytes),
        "broker_log_bytes_per_event": None if log_bytes is None else round(log_bytes / events, 1),
        "redis_cores": per_s(redis_cpu),
        "redis_cpu_s_per_1000_events": per_k(redis_cpu),
        "redis_ops_per_s": per_s(commands),
        "redis_commands_per_event": None if commands is None else round(commands / events, 3),
        "workers_cores": per_s(workers),
        "workers_cpu_s_per_1000_events": per_k(workers),
    }
