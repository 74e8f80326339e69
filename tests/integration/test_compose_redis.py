"""docker-compose's Redis as compose runs it, with the users file `vigil stack redis-users` and the
certificate `vigil stack compose-tls` write (no Docker engine here: Debian's redis-server given
compose's command): only TLS, checked against compose's CA; Vigil's containers sign in with compose's
environment and keep their state; a connection that does not sign in (the healthcheck's
`redis-cli --tls ping`) may PING and nothing else; Vigil's user is kept to Vigil's keys."""

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


def in_compose(args: list[str], files: dict[str, Path], port: int) -> list[str]:
    """compose's argv with its secrets' paths as files here and its port 6379 moved to ``port``."""
    moved = [str(files.get(a.removeprefix("/run/secrets/"), a)) if a.startswith("/run/secrets/") else a for a in args]
    return [str(port) if a == "6379" else a for a in moved]


@pytest.fixture
def compose_redis(tmp_path: Path) -> Iterator[tuple[int, str, dict[str, Path]]]:
    """(port, password, compose's secrets as files here) of a redis-server started with compose's command."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server missing (make system-deps)")
    password, users, tls = secrets.token_hex(24), tmp_path / "redis-users.conf", tmp_path / "tls"
    tls.mkdir()
    for command in (["redis-users", "--out", str(users)], ["compose-tls", "--out", str(tls)]):
        made = subprocess.run(  # noqa: S603 - the commands compose's comments tell the operator to run
            [sys.executable, "-m", "vigil.cli", "stack", *command, "--json"],
            env={"PATH": "/usr/bin:/bin", "VIGIL_REDIS_PASSWORD": password, "HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr[-2000:]
    assert users.stat().st_mode & 0o777 == 0o600
    files = {"redis_users": users, "redis_pem": tls / "redis.pem", "tls_ca": tls / "ca.pem"}
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


def test_vigil_signs_in_over_tls_with_composes_environment_and_the_healthcheck_may_only_ping(
    compose_redis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from vigil.infra.connect import redis_client
    from vigil.infra.redis import places_key, places_read, queue_places, queue_places_read
    from vigil.infra.settings import Settings
    from vigil.schemas.codecs.fhir_places import Place

    port, password, files = compose_redis
    check = compose_service("redis")["healthcheck"]["test"]
    assert check[:3] == ["CMD", "redis-cli", "--tls"]
    cli = [check[1], "-p", str(port), *in_compose(check[2:], files, port)]  # compose's, at this server's port
    pong = subprocess.run(cli, capture_output=True, text=True, timeout=10)  # noqa: S603
    assert pong.returncode == 0 and pong.stdout.strip() == "PONG", pong.stdout + pong.stderr
    ca = str(files["tls_ca"])
    anonymous = redis.Redis(port=port, ssl=True, ssl_ca_certs=ca)
    with pytest.raises(redis.exceptions.NoPermissionError):
        anonymous.get("vigil:w:anything")  # a connection that does not sign in reads nothing
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(port=port, username="vigil", password="not-the-password", ssl=True, ssl_ca_certs=ca).ping()
    with pytest.raises(redis.exceptions.ConnectionError):
        redis.Redis(port=port, username="vigil", password=password, socket_timeout=5).ping()  # no plain port
    other = tmp_path / "other-ca"
    other.mkdir()
    subprocess.run([sys.executable, "-m", "vigil.cli", "stack", "compose-tls", "--out", str(other)], check=True)  # noqa: S603
    with pytest.raises(redis.exceptions.ConnectionError, match="certificate verify failed"):
        redis.Redis(port=port, ssl=True, ssl_ca_certs=str(other / "ca.pem")).ping()  # not compose's CA: refused

    for name, value in compose_env("worker").items():  # the worker's environment, as compose gives it
        monkeypatch.setenv(name, value)
    assert compose_env("worker")["VIGIL_REDIS__URL"] == "rediss://redis:6379/0"
    monkeypatch.setenv("VIGIL_REDIS__URL", f"rediss://localhost:{port}/0")  # compose's rediss://redis:6379
    monkeypatch.setenv("VIGIL_REDIS__SSL_CAFILE", ca)  # compose's tls_ca secret
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
