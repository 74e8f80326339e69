"""Worker readiness: a worker is ready while Redis answers, its own last Redis call succeeded, none
of its agents is crash-looping or stuck on a batch (``agents_ok``), none of its partitions is
stalled (``partitions_ok``) and its event loop runs (``loop_ok``), each passed down by the worker
and named apart in the state: a stall, a blocked loop and a crash-looping agent call for different
remedies (docs/operations.md, the runbook).

A probe thread pings Redis every second (a stalled or stopped Redis shows up even when no event
is flowing) and combines that with ``RedisHealth.ok`` of the worker's store (False while a state
write is being retried). The result is served as ``GET /readyz`` (200 ready, 503 not) and
``GET /healthz`` (200 while the process runs) on ``settings.health_port`` (loopback), and written
atomically to ``settings.health_file`` as JSON, for an orchestrator or a test to read.

Not ready never means "exit": the worker keeps its partitions, does not ack what it could not
write, and catches up when Redis returns (see docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from vigil.infra import metrics
from vigil.infra.connect import redis_client
from vigil.infra.logging import get_logger
from vigil.infra.settings import Settings

log = get_logger(__name__)


def redis_ping(settings: Settings) -> Callable[[], bool]:
    """A PING with 1 s timeouts through the worker's own credentials: True when Redis answers."""
    import redis

    client = redis_client(settings, socket_timeout=1.0, socket_connect_timeout=1.0)

    def ping() -> bool:
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False

    return ping


Check = Callable[[], bool]


def _always() -> bool:
    return True


def worker_checks(
    agents_ok: Check = _always, partitions_ok: Check = _always, loop_ok: Check = _always
) -> dict[str, Check]:
    """The worker's own causes of not being ready besides Redis, by the name each has in the
    readiness state and its log line."""
    return {"agents_ok": agents_ok, "partitions_ok": partitions_ok, "loop_ok": loop_ok}


def export_readiness(
    settings: Settings,
    store_ok: Check,
    agents_ok: Check = _always,
    partitions_ok: Check = _always,
    loop_ok: Check = _always,
) -> None:
    """Computed on each scrape, by readiness's own rule: ``vigil_redis_up``, 1 while Redis answers
    a PING and the worker's own last Redis call succeeded, and ``vigil_worker_ready``, 1 while that
    holds and the worker's own checks too (what ``/readyz`` answers). One PING serves a scrape's two
    gauges."""
    ping = _once_per_scrape(redis_ping(settings))
    checks = worker_checks(agents_ok, partitions_ok, loop_ok).values()
    metrics.REDIS_UP.set_function(lambda: 1.0 if ping() and store_ok() else 0.0)
    metrics.WORKER_READY.set_function(lambda: 1.0 if ping() and store_ok() and all(ok() for ok in checks) else 0.0)


def _once_per_scrape(ping: Callable[[], bool], max_age_s: float = 0.5) -> Callable[[], bool]:
    """``ping``'s answer, asked again only when the last is older than ``max_age_s``."""
    last: list[tuple[float, bool]] = []

    def answer() -> bool:
        if not last or time.monotonic() - last[0][0] > max_age_s:
            answered = ping()  # up to its 1 s timeout when Redis hangs: timed from its answer
            last[:] = [(time.monotonic(), answered)]
        return last[0][1]

    return answer


class ReadinessProbe:
    def __init__(
        self,
        settings: Settings,
        store_ok: Check = _always,
        interval_s: float = 1.0,
        agents_ok: Check = _always,
        partitions_ok: Check = _always,
        loop_ok: Check = _always,
    ) -> None:
        # the worker's own view (agents.runtime): False while its Redis writes are being retried
        self._store_ok = store_ok
        # agents.health: False while an agent crash-loops or cannot finish a batch; agents.progress:
        # while a partition is stalled; agents.loop: before the loop's first beat and while it is blocked
        self._checks = worker_checks(agents_ok, partitions_ok, loop_ok)
        self._ping = redis_ping(settings)
        self.interval_s = interval_s
        self.file = settings.health_file
        self.state: dict[str, Any] = {"ready": False, "redis": False, "since": time.time()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vigil-readiness", daemon=True)

    def check(self) -> dict[str, Any]:
        redis_ok = self._ping()
        causes = {"store_ok": self._store_ok()} | {name: ok() for name, ok in self._checks.items()}
        ready = redis_ok and all(causes.values())
        previous = self.state
        since = previous["since"] if previous["ready"] == ready else time.time()
        if previous["ready"] != ready:
            log.warning("worker.readiness", ready=ready, redis=redis_ok, **causes)
        self.state = {
            "ready": ready,
            "redis": redis_ok,
            **causes,
            "pid": os.getpid(),
            "at": time.time(),
            "since": since,
        }
        return self.state

    def _write(self, state: dict[str, Any]) -> None:
        if self.file is None:
            return
        path = Path(self.file)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, path)  # readers never see half a file

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._write(self.check())
            except OSError as exc:  # a full disk must not kill the probe
                log.warning("worker.readiness.write_failed", error=type(exc).__name__)
            except Exception as exc:  # nor anything else: /readyz would answer its last state for ever
                log.error("worker.readiness.failed", error=type(exc).__name__, exc_info=exc)
            self._stop.wait(self.interval_s)

    def start(self) -> ReadinessProbe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()


def serve_readiness(probe: ReadinessProbe, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/readyz":
                state = probe.state
                code = 200 if state["ready"] else 503
            elif self.path == "/healthz":
                state, code = {"alive": True, "pid": os.getpid()}, 200
            else:
                state, code = {"error": "not found"}, 404
            body = json.dumps(state).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args: object) -> None:  # probes every few seconds: no access log
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="vigil-readyz", daemon=True).start()
    return server


def start_readiness(
    settings: Settings,
    store_ok: Check,
    agents_ok: Check = _always,
    partitions_ok: Check = _always,
    loop_ok: Check = _always,
) -> ReadinessProbe | None:
    """Start the probe when a health port or file is configured (``vigil worker`` calls this)."""
    if settings.health_port is None and settings.health_file is None:
        return None
    probe = ReadinessProbe(
        settings, store_ok, agents_ok=agents_ok, partitions_ok=partitions_ok, loop_ok=loop_ok
    ).start()
    if settings.health_port is not None:
        serve_readiness(probe, settings.health_port)
    return probe


def read_health_file(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError):
        return None
