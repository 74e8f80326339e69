"""Fixtures of the docker-compose tests (test_compose_kafka, test_compose_redis, test_compose_stack)."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for
from tests.integration.test_compose_kafka import ComposeKafka, _shims, compose_service, filled
from tests.integration.test_compose_redis import in_compose
from vigil.infra.stack.processes import port_open


@pytest.fixture
def compose_tls(tmp_path: Path) -> Path:
    """The folder `vigil stack compose-tls` writes (compose's ``deploy/tls``): ca.pem, kafka.pem, redis.pem, web.pem."""
    tls = tmp_path / "tls"
    tls.mkdir()
    made = subprocess.run(  # noqa: S603 - the command compose's comments tell the operator to run
        [sys.executable, "-m", "vigil.cli", "stack", "compose-tls", "--out", str(tls), "--json"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    servers = json.loads(made.stdout.strip().splitlines()[-1])["servers"]
    assert servers == {"kafka": ["kafka", "localhost"], "redis": ["redis", "localhost"], "web": ["web", "localhost"]}
    return tls


@pytest.fixture
def compose_kafka(tmp_path: Path, compose_tls: Path) -> Iterator[ComposeKafka]:
    tls = compose_tls
    passwords = {
        "VIGIL_KAFKA_ADMIN_PASSWORD": secrets.token_hex(24),
        "VIGIL_KAFKA_PASSWORD": secrets.token_urlsafe(24),
        "VIGIL_KAFKA_INGEST_PASSWORD": secrets.token_hex(24),
        # VIGIL_KAFKA_SUBSCRIBER_PASSWORD unset: compose's default, no subscriber user
        "VIGIL_REDIS_PASSWORD": "unused-here",
        "VIGIL_LOG_HASH_KEY": secrets.token_hex(16),
    }
    port, controller = free_port(), free_port()
    data = tmp_path / "data"
    data.mkdir()
    env = {
        **filled(compose_service("kafka")["environment"], passwords),
        "PATH": "/usr/bin:/bin",
        # what compose's container has where the image keeps it, moved here
        "KAFKA_BIN": str(_shims(tmp_path)),
        "KAFKA_DATA_DIR": str(data),
        "KAFKA_RUN_DIR": str(tmp_path / "run"),
        "KAFKA_BROKER_PEM": str(tls / "kafka.pem"),
        "KAFKA_CA": str(tls / "ca.pem"),
        "KAFKA_ADVERTISED_HOST": "localhost",
        "KAFKA_LISTEN_HOST": "127.0.0.1",
        "KAFKA_PORT": str(port),
        "KAFKA_CONTROLLER_PORT": str(controller),
    }
    kafka = ComposeKafka(port, tmp_path, env, passwords, Path(env["KAFKA_BIN"]))
    proc = kafka.start()
    try:
        assert wait_for(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 90), "no listener"
        assert proc.poll() is None, (tmp_path / "kafka.out").read_text()[-3000:]
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def compose_redis(tmp_path: Path, compose_tls: Path) -> Iterator[tuple[int, str, dict[str, Path]]]:
    """(port, password, compose's secrets as files here) of a redis-server started with compose's command."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server missing (make system-deps)")
    password, users = secrets.token_hex(24), tmp_path / "redis-users.conf"
    made = subprocess.run(  # noqa: S603 - the command compose's comments tell the operator to run
        [sys.executable, "-m", "vigil.cli", "stack", "redis-users", "--out", str(users), "--json"],
        env={"PATH": "/usr/bin:/bin", "VIGIL_REDIS_PASSWORD": password, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    assert users.stat().st_mode & 0o777 == 0o600
    files = {"redis_users": users, "redis_pem": compose_tls / "redis.pem", "tls_ca": compose_tls / "ca.pem"}
    command = compose_service("redis")["command"]
    assert command[:2] == ["redis-server", "/run/secrets/redis_users"]
    port = free_port()
    args = [binary, *in_compose(command[1:], files, port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        assert wait_for(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 30) and proc.poll() is None
        yield port, password, files
    finally:
        proc.terminate()
        proc.wait(10)
