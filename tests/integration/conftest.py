"""Fixtures of the docker-compose tests (test_compose_kafka, test_compose_redis, test_compose_stack):
compose's secrets as the files `vigil stack compose-tls` and `vigil stack compose-secrets` write."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import free_port, wait_for
from tests.integration.test_compose_kafka import NODES, ComposeKafka, Node, _shims, compose_service, mounted
from tests.integration.test_compose_redis import in_compose
from vigil.infra.stack.processes import port_open

REPO = Path(__file__).parents[2]


def operators_command(command: str, folder: Path, home: Path) -> dict:
    """`vigil stack <command> --out <folder>` (a new folder), as compose's comments tell the operator
    to run it before the first `up`: its JSON summary."""
    folder.mkdir()
    made = subprocess.run(  # noqa: S603 - the command compose's comments tell the operator to run
        [sys.executable, "-m", "vigil.cli", "stack", command, "--out", str(folder), "--json"],
        env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    return json.loads(made.stdout.strip().splitlines()[-1])


@pytest.fixture
def compose_tls(tmp_path: Path) -> Path:
    """The folder `vigil stack compose-tls` writes (compose's ``deploy/tls``): ca.pem, kafka.pem, redis.pem, web.pem."""
    tls = tmp_path / "tls"
    servers = operators_command("compose-tls", tls, tmp_path)["servers"]
    assert servers == {
        "kafka": ["kafka", "kafka-1", "kafka-2", "kafka-3", "localhost"],  # its nodes share it
        "redis": ["redis", "localhost"],
        "web": ["web", "localhost"],
    }
    return tls


@pytest.fixture
def compose_secrets(tmp_path: Path, compose_tls: Path) -> dict[str, Path]:
    """compose's secrets (its top-level ``secrets``' names) as files here: those `vigil stack
    compose-secrets` writes (deploy/secrets) and compose-tls's (deploy/tls)."""
    folder = tmp_path / "secrets"
    assert set(operators_command("compose-secrets", folder, tmp_path)["sources"].values()) == {"generated"}
    declared = yaml.safe_load((REPO / "docker-compose.yml").read_text())["secrets"]
    here = {"./deploy/secrets/": folder, "./deploy/tls/": compose_tls}
    files = {}
    for name, spec in declared.items():
        for where, folder_here in here.items():
            if spec["file"].startswith(where):
                files[name] = folder_here / spec["file"].removeprefix(where)
                assert files[name].is_file(), f"compose's secret {name}: {spec['file']} was not written"
    return files


@pytest.fixture
def compose_kafka(tmp_path: Path, compose_tls: Path, compose_secrets: dict[str, Path]) -> Iterator[ComposeKafka]:
    """compose's three Kafka services, each its script with its environment, on loopback ports here."""
    tls = compose_tls
    shims = _shims(tmp_path)
    ports = {service: (free_port(), free_port()) for service in NODES}
    specs = {service: compose_service(service)["environment"] for service in NODES}
    # compose's voters (id@kafka-N:9093) at the controller ports here
    voters = ",".join(f"{specs[s]['KAFKA_NODE_ID']}@localhost:{ports[s][1]}" for s in NODES)
    assert len({specs[s]["KAFKA_CLUSTER_ID"] for s in NODES}) == 1
    nodes = []
    for service in NODES:
        data = tmp_path / service / "data"
        data.mkdir(parents=True)
        env = {
            **mounted(specs[service], compose_secrets),
            "PATH": "/usr/bin:/bin",
            # what compose's container has where the image keeps it, moved here
            "KAFKA_BIN": str(shims),
            "KAFKA_DATA_DIR": str(data),
            "KAFKA_RUN_DIR": str(tmp_path / service / "run"),
            "KAFKA_BROKER_PEM": str(tls / "kafka.pem"),
            "KAFKA_CA": str(tls / "ca.pem"),
            "KAFKA_ADVERTISED_HOST": "localhost",
            "KAFKA_LISTEN_HOST": "127.0.0.1",
            "KAFKA_PORT": str(ports[service][0]),
            "KAFKA_CONTROLLER_PORT": str(ports[service][1]),
            "KAFKA_CONTROLLER_VOTERS": voters,
        }
        nodes.append(Node(service, ports[service][0], env))
    kafka = ComposeKafka(tmp_path, nodes, compose_secrets, shims)
    kafka.start()
    try:
        for node in nodes:
            proc = node.proc
            assert proc is not None
            up = wait_for(lambda: port_open("127.0.0.1", node.port) or proc.poll() is not None, 120)  # noqa: B023
            assert up and proc.poll() is None, kafka.output()[-3000:]
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def compose_redis(tmp_path: Path, compose_secrets: dict[str, Path]) -> Iterator[tuple[int, str, dict[str, Path]]]:
    """(port, password, compose's secrets as files here) of a redis-server started with compose's command."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server missing (make system-deps)")
    files = compose_secrets
    assert files["redis_users"].stat().st_mode & 0o777 == 0o600
    password = files["redis_password"].read_text()
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
