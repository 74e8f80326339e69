"""Shared fixtures: a real embedded Kafka broker + Redis for the session (own ports and home, so a
running `vigil demo` is left alone), and factories for workers and readers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import vigil.models  # noqa: F401  onnxruntime's telemetry off in the tests' process too
from vigil.infra.ports import free_port, free_port_block

# Free ports by default, so parallel test runs (and a running `vigil demo`) never collide.
TEST_KAFKA_PORT = int(os.environ.get("VIGIL_TEST_KAFKA_PORT") or free_port())
TEST_KAFKA_CONTROLLER_PORT = int(os.environ.get("VIGIL_TEST_KAFKA_CONTROLLER_PORT") or free_port())
TEST_REDIS_PORT = int(os.environ.get("VIGIL_TEST_REDIS_PORT") or free_port())


class FakeClock:
    """A monotonic clock the test moves by hand (``clock.now += 5``), for code that takes a clock."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pom_kafka_version() -> str:
    """The Kafka version infra/kafka/pom.xml pins: the embedded stack's and the tests' jars."""
    pom = (Path(__file__).parents[1] / "infra" / "kafka" / "pom.xml").read_text()
    version = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    assert version is not None
    return version.group(1)


def link_cached_kafka_jars(home: Path) -> None:
    """Reuse the Maven-fetched jars of the user cache when present (no second download)."""
    from vigil.infra.settings import default_home

    libs = default_home() / "kafka" / "libs"
    if libs.exists():
        (home / "kafka").mkdir(parents=True, exist_ok=True)
        (home / "kafka" / "libs").symlink_to(libs)


def own_stack_settings(home: Path, **kafka: object):  # type: ignore[no-untyped-def]
    """Settings of a stack of a test's own in ``home`` (the cached jars linked): free ports for one
    Kafka node, its controller and Redis; ``kafka`` adds Kafka settings."""
    from vigil.infra.settings import KafkaSettings, RedisSettings, Settings

    link_cached_kafka_jars(home)
    base = free_port_block(3)
    return Settings(
        home=home,
        kafka=KafkaSettings(embedded_port=base, embedded_controller_port=base + 1, **kafka),  # type: ignore[arg-type]
        redis=RedisSettings(embedded_port=base + 2),
    )


@pytest.fixture(scope="session")
def stack_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vigil-test-") as tmp:
        home = Path(tmp)
        link_cached_kafka_jars(home)
        yield home
        # the workers', broker's and Redis' logs outlive the session (pytest keeps its last 3 base
        # temp dirs): a flaky failure on a loaded CI machine can be read afterwards
        logs = home / "logs"
        if logs.is_dir():
            shutil.copytree(logs, tmp_path_factory.getbasetemp() / "stack-logs", dirs_exist_ok=True)


@pytest.fixture(scope="session")
def stack_settings(stack_home: Path):
    from vigil.infra.settings import KafkaSettings, RedisSettings, Settings

    return Settings(
        home=stack_home,
        kafka=KafkaSettings(embedded_port=TEST_KAFKA_PORT, embedded_controller_port=TEST_KAFKA_CONTROLLER_PORT),
        redis=RedisSettings(embedded_port=TEST_REDIS_PORT),
    )


@pytest.fixture(scope="session")
def secure_settings() -> Iterator[object]:
    """A secure embedded stack's settings (SASL_SSL + SCRAM + local CA, Redis ACL user), in its
    own home and on its own free ports: one per session, shared by every module that needs it."""
    from vigil.infra.settings import KafkaSettings, RedisSettings, Settings

    with tempfile.TemporaryDirectory(prefix="vigil-secure-") as tmp:
        home = Path(tmp)
        link_cached_kafka_jars(home)
        base = int(os.environ.get("VIGIL_TEST_SECURE_KAFKA_PORT") or free_port_block(3))
        yield Settings(
            home=home,
            kafka=KafkaSettings(embedded_port=base, embedded_controller_port=base + 1, security_protocol="SASL_SSL"),
            redis=RedisSettings(embedded_port=base + 2),
        )


@pytest.fixture(scope="session")
def secure_stack(secure_settings):
    """The secure stack, started on first use and stopped at the end of the session."""
    from vigil.infra.stack import stack_down, stack_up

    info = stack_up(secure_settings)
    yield info
    stack_down(secure_settings)


@pytest.fixture(scope="session")
def stack(stack_settings):
    """The real broker and Redis, started once per test session and stopped at the end."""
    from vigil.infra.stack import stack_down, stack_up

    info = stack_up(stack_settings)
    yield info
    stack_down(stack_settings)


@pytest.fixture
def spawn(stack, stack_settings, stack_home: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Factory: start `vigil worker` processes; all are stopped after the test."""
    from vigil.infra.workers import spawn_worker, stop_worker

    procs: list[subprocess.Popen[bytes]] = []

    def _spawn(name: str = "worker", env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = spawn_worker(stack_settings, stack_home / "logs" / f"{name}-{uuid.uuid4().hex[:6]}.log", env)
        procs.append(proc)
        return proc

    yield _spawn
    for proc in procs:
        stop_worker(proc, timeout_s=10)


class SharedWorker:
    """The session's one worker, which a test that must own every partition can stop for a while."""

    def __init__(self, settings: object, log: Path) -> None:
        from vigil.infra.workers import spawn_worker

        self._start = lambda: spawn_worker(settings, log)  # type: ignore[arg-type]
        self.proc: subprocess.Popen[bytes] | None = self._start()

    def poll(self) -> int | None:
        assert self.proc is not None, "the shared worker is stopped"
        return self.proc.poll()

    def stop(self) -> None:
        from vigil.infra.workers import stop_worker

        if self.proc is not None:
            stop_worker(self.proc, timeout_s=10)
            self.proc = None

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Stopped inside the block (its partitions go to the test's own workers), started after."""
        self.stop()
        try:
            yield
        finally:
            self.proc = self._start()


@pytest.fixture(scope="session")
def shared_worker(stack, stack_settings, stack_home: Path) -> Iterator[SharedWorker]:
    """One worker for the integration tests that only need a running pipeline."""
    worker = SharedWorker(stack_settings, stack_home / "logs" / "shared-worker.log")
    yield worker
    worker.stop()


@pytest.fixture
def producer(stack, stack_settings):
    from vigil.infra.connect import kafka_producer

    p = kafka_producer(stack_settings, linger_ms=2)
    yield p
    p.close()


@pytest.fixture
def reader(stack, stack_settings):
    from vigil.infra.readback import TopicReader

    readers = []

    def _reader(keep_scores: bool = False):
        r = TopicReader(stack_settings, keep_scores=keep_scores).start()
        readers.append(r)
        return r

    yield _reader
    for r in readers:
        r.stop()


T = TypeVar("T")


def with_store(store: Any, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``main`` run on an event loop of its own, then the store's connections closed (they belong to
    that loop): what the store tests run."""

    async def run() -> T:
        try:
            return await main()
        finally:
            await store.close()

    return asyncio.run(run())


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def unique_patient(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def prometheus_server(tool: str, args: list[str], port: int, log: Path) -> Iterator[str]:
    """Debian's ``tool`` (prometheus, prometheus-alertmanager) with ``args``, listening on loopback
    ``port``: its URL once ``/-/ready`` answers; stopped after. Its output goes to ``log``."""
    from urllib.error import URLError
    from urllib.request import urlopen

    binary = shutil.which(tool)
    if binary is None:
        pytest.fail(f"{tool} not found: install Debian's {tool} package (make system-deps)")
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            with urlopen(f"{url}/-/ready", timeout=2) as reply:
                return bool(reply.status == 200)
        except (URLError, OSError):
            return False

    with log.open("wb") as out:
        proc = subprocess.Popen(
            [binary, *args, f"--web.listen-address=127.0.0.1:{port}"], stdout=out, stderr=subprocess.STDOUT
        )
        try:
            assert wait_for(ready, timeout=30), log.read_text()[-2000:]
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)
