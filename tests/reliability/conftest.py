"""Fixtures of the fault tests. They reuse the session stack of tests/conftest.py (a real KRaft
broker and a real redis-server) and leave it running and healthy for the next test."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

# `pytest tests/reliability` (not only `python -m pytest`): the helpers import `tests.*`
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.conftest import unique_patient, wait_for  # noqa: E402


@pytest.fixture(scope="session")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each test writes its counts as JSON (also VIGIL_RELIABILITY_RESULTS when set)."""
    explicit = os.environ.get("VIGIL_RELIABILITY_RESULTS")
    return Path(explicit) if explicit else tmp_path_factory.mktemp("reliability-results")


@pytest.fixture(autouse=True)
def stack_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """A fault test that fails half-way must not leave Kafka or Redis down for the next one."""
    yield
    if "stack" not in request.fixturenames:
        return
    from vigil.infra.stack import StackPaths
    from vigil.infra.stack.kafka import start_kafka
    from vigil.infra.stack.processes import pid_alive, port_open
    from vigil.infra.stack.redis_server import start_redis

    settings = request.getfixturevalue("stack_settings")
    redis_pid = pid_alive(StackPaths(settings.home).redis_pid)
    if redis_pid:
        os.kill(redis_pid, 18)  # SIGCONT, in case a test stopped it
    if not port_open("127.0.0.1", settings.redis.embedded_port):
        start_redis(settings)
    if not port_open("127.0.0.1", settings.kafka.embedded_port):
        start_kafka(settings)


@pytest.fixture
def started_worker(spawn, producer, stack_home) -> Callable[..., object]:
    """Factory: spawn a worker and return once *it* has scored events (joined the group and owns
    partitions). A probe scored by any worker is not enough: the session's shared worker is in the
    same group and would score it while this one is still starting."""
    from vigil.schemas.events import PatientEvent

    def _start(name: str = "worker", env: dict[str, str] | None = None, timeout: float = 90.0):
        before = set((stack_home / "logs").glob(f"{name}-*.log"))
        proc = spawn(name, env)

        def scored_by_this_worker() -> bool:
            # probes on random keys land on every partition in turn, this worker's among them
            probe = PatientEvent(
                patient_id=unique_patient("probe"),
                kind="vital",
                code="HR",
                value=80,
                unit="/min",
                observed_at=datetime.now(UTC) - timedelta(minutes=1),
            )
            producer.send("vigil.events.raw", key=probe.patient_id.encode(), value=probe.model_dump_json().encode())
            producer.flush()
            logs = set((stack_home / "logs").glob(f"{name}-*.log")) - before
            return any('"batch.scored"' in log.read_text(errors="replace") for log in logs)

        assert wait_for(scored_by_this_worker, timeout=timeout, interval=1.0), (
            f"worker {name} did not score events within {timeout:.0f}s"
        )
        return proc

    return _start


@pytest.fixture
def redis_admin(stack, stack_settings):
    """The embedded Redis' operator user (the workers' ACL user may not run DBSIZE's peers)."""
    from vigil.infra.connect import redis_client

    client = redis_client(stack_settings, admin=True, socket_timeout=2)
    yield client
    client.close()
