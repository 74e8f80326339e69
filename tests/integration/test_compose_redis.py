"""docker-compose's Redis as compose runs it, with the users file `vigil stack compose-secrets` and the
certificate `vigil stack compose-tls` write (no Docker engine here: Debian's redis-server, the package
compose's image installs, given compose's command): only TLS, checked against compose's CA; Vigil's
containers sign in with compose's environment and keep their state; a connection that does not sign
in (the healthcheck's `redis-cli --tls ping`) may PING and nothing else; Vigil's user is kept to
Vigil's keys."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import yaml

from tests.integration.test_compose_kafka import mounted
from tests.integration.test_image import compose_env

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]


def compose_service(name: str) -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][name]


def in_compose(args: list[str], files: dict[str, Path], port: int) -> list[str]:
    """compose's argv with its secrets' paths as files here and its port 6379 moved to ``port``."""
    moved = [str(files.get(a.removeprefix("/run/secrets/"), a)) if a.startswith("/run/secrets/") else a for a in args]
    return [str(port) if a == "6379" else a for a in moved]


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

    # the worker's environment, as compose gives it, its secrets (redis_password, tls_ca) the files here
    for name, value in mounted(compose_env("worker"), files).items():
        monkeypatch.setenv(name, value)
    assert compose_env("worker")["VIGIL_REDIS__URL"] == "rediss://redis:6379/0"
    assert compose_env("worker")["VIGIL_REDIS__PASSWORD_FILE"] == "/run/secrets/redis_password"
    monkeypatch.setenv("VIGIL_REDIS__URL", f"rediss://localhost:{port}/0")  # compose's rediss://redis:6379
    assert os.environ["VIGIL_REDIS__SSL_CAFILE"] == ca  # compose's tls_ca secret
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
