"""docker-compose's Redis as compose runs it, with the users file `vigil stack redis-users` writes
(no Docker engine here: Debian's redis-server given compose's command): Vigil's containers sign in
with compose's environment and keep their state; a connection that does not sign in (the
healthcheck's `redis-cli ping`) may PING and nothing else; Vigil's user is kept to Vigil's keys."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml

from tests.conftest import free_port, wait_for
from tests.integration.test_image import compose_env
from vigil.infra.stack.processes import port_open

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]


def compose_service(name: str) -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][name]


@pytest.fixture
def compose_redis(tmp_path: Path) -> Iterator[tuple[int, str, Path]]:
    """(port, password, users file) of a redis-server started with compose's command."""
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
    command = compose_service("redis")["command"]
    assert command[:2] == ["redis-server", "/run/secrets/redis_users"]
    port = free_port()
    args = [binary, str(users), *command[2:], "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)  # noqa: S603
    try:
        assert wait_for(lambda: port_open("127.0.0.1", port) or proc.poll() is not None, 30) and proc.poll() is None
        yield port, password, users
    finally:
        proc.terminate()
        proc.wait(10)


def test_vigil_signs_in_with_composes_environment_and_the_healthcheck_may_only_ping(
    compose_redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vigil.infra.connect import redis_client
    from vigil.infra.redis import places_key, places_read, queue_places, queue_places_read
    from vigil.infra.settings import Settings
    from vigil.schemas.codecs.fhir_places import Place

    port, password, _ = compose_redis
    check = compose_service("redis")["healthcheck"]["test"]
    assert check == ["CMD", "redis-cli", "ping"]
    cli = [check[1], "-p", str(port), *check[2:]]  # compose's, at this server's port
    pong = subprocess.run(cli, capture_output=True, text=True, timeout=10)  # noqa: S603
    assert pong.returncode == 0 and pong.stdout.strip() == "PONG"
    anonymous = redis.Redis(port=port)
    with pytest.raises(redis.exceptions.NoPermissionError):
        anonymous.get("vigil:w:anything")  # a connection that does not sign in reads nothing
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=port, username="vigil", password="not-the-password").ping()

    for name, value in compose_env("worker").items():  # the worker's environment, as compose gives it
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("VIGIL_REDIS__URL", f"redis://127.0.0.1:{port}/0")  # compose's redis:6379
    monkeypatch.setenv("VIGIL_REDIS__PASSWORD", password)  # compose's ${VIGIL_REDIS_PASSWORD}
    client = redis_client(Settings())
    kept = (Place("ICU-3", "active", 1.0, None),)
    pipe = client.pipeline(transaction=False)
    queue_places(pipe, {("p1", "V1"): kept}, 60)
    pipe.execute()
    pipe = client.pipeline(transaction=False)
    queue_places_read(pipe, [("p1", "V1")], 60)
    assert places_read([("p1", "V1")], pipe.execute()) == {("p1", "V1"): kept}
    assert places_key(("p1", "V1")).startswith("vigil:")
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.set("other-app:key", b"x")  # Vigil's user: Vigil's keys only
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.flushall()  # and no dangerous command
