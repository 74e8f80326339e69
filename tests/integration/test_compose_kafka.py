"""docker-compose's Kafka as compose runs it (no Docker engine here): its entrypoint,
``deploy/kafka-start.sh``, run by busybox's sh (the image is Alpine's: its /bin/sh; Debian's dash
where busybox is missing) with compose's environment on the same Kafka's
jars (the image's ``kafka-storage.sh``, ``kafka-server-start.sh`` and
``kafka-broker-api-versions.sh`` run these main classes), the certificates ``vigil stack compose-tls``
writes, then compose's one-shot ``kafka-access`` and ``topics`` commands with their environments.
Only SASL_SSL with a known user gets in; each role may do what its ACLs say; the healthcheck signs
in; a restart keeps the users; a volume formatted without them, or a password Kafka would misread,
stops the start with one line."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.conftest import link_cached_kafka_jars, pom_kafka_version, wait_for
from vigil.infra.stack.processes import port_open
from vigil.schemas import topics

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
SCRIPT = REPO / "deploy" / "kafka-start.sh"
# compose's /bin/sh: the apache/kafka image is Alpine's, whose sh is busybox's (make system-deps)
BUSYBOX = shutil.which("busybox")
SH = [BUSYBOX, "sh"] if BUSYBOX else ["/bin/sh"]


def compose_service(name: str) -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][name]


def mounted(env: dict, secrets: dict[str, Path]) -> dict[str, str]:
    """A compose environment with each /run/secrets/NAME (where compose mounts its secret NAME) the
    file here that ``secrets`` names."""

    def here(value: str) -> str:
        name = value.removeprefix("/run/secrets/")
        return str(secrets[name]) if value.startswith("/run/secrets/") and name in secrets else value

    return {k: here(str(v)) for k, v in env.items()}


NODES = ("kafka-1", "kafka-2", "kafka-3")  # compose's Kafka services


@dataclass
class Node:
    """One of compose's Kafka services, run here: its script's environment, its listener."""

    service: str
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class ComposeKafka:
    folder: Path
    nodes: list[Node]
    secrets: dict[str, Path]  # compose's secrets as files here
    shims: Path

    @property
    def bootstrap(self) -> str:
        return ",".join(f"localhost:{node.port}" for node in self.nodes)

    @property
    def env(self) -> dict[str, str]:
        """The first node's environment (what a test changes to start it another way)."""
        return self.nodes[0].env

    def start(self, *nodes: Node) -> None:
        """Start ``nodes`` (all of them when none is named), each as compose starts its service."""
        for node in nodes or self.nodes:
            spec = compose_service(node.service)
            mounted = dict(v.split(":")[1::-1] for v in spec["volumes"] if v.startswith("./"))
            assert spec["entrypoint"][0] == "/bin/sh" and REPO / mounted[spec["entrypoint"][1]] == SCRIPT
            with (self.folder / f"{node.service}.out").open("ab") as log:  # sh execs the broker: one process
                node.proc = subprocess.Popen(  # noqa: S603
                    [*SH, str(SCRIPT)], env=node.env, stdout=log, stderr=subprocess.STDOUT
                )

    def stop(self, *nodes: Node) -> None:
        """SIGTERM to each at once (a node left alone waits for a quorum to let it shut down cleanly),
        SIGKILL to one still there a minute later."""
        running = [n.proc for n in nodes or self.nodes if n.proc is not None and n.proc.poll() is None]
        for proc in running:
            proc.terminate()
        for proc in running:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def output(self) -> str:
        return "".join((self.folder / f"{n.service}.out").read_text() for n in self.nodes)

    def password(self, secret: str) -> str:
        return self.secrets[secret].read_text()

    def env_of(self, service: str, **changed: str) -> dict[str, str]:
        """compose's environment of ``service`` (a Vigil container), at this broker (``changed``: compose's
        secrets of those names with another value)."""
        secrets = dict(self.secrets)
        for name, value in changed.items():
            secrets[name] = self.folder / "changed" / name
            secrets[name].parent.mkdir(exist_ok=True)
            secrets[name].write_text(value)
        return {
            **mounted(compose_service(service)["environment"], secrets),
            "VIGIL_KAFKA__BOOTSTRAP": self.bootstrap,
            "VIGIL_KAFKA__SSL_CAFILE": str(self.folder / "tls" / "ca.pem"),  # compose's tls_ca secret
            "VIGIL_HOME": str(self.folder / "home"),
            "PATH": "/usr/bin:/bin",
        }

    def vigil(self, service: str, *extra: str, **changed: str) -> subprocess.CompletedProcess[str]:
        """compose's command of ``service`` with its environment (``env_of``), at this broker."""
        command = compose_service(service)["command"]
        assert command[0] == "vigil"
        return subprocess.run(  # noqa: S603 - compose's own command
            [sys.executable, "-m", "vigil.cli", *command[1:], *extra],
            env=self.env_of(service, **changed),
            capture_output=True,
            text=True,
            timeout=120,
        )


def _kafka_tools_jar(folder: Path) -> Path:
    """kafka-tools (BrokerApiVersionsCommand, the healthcheck's) of the broker's version, from Maven Central."""
    version = pom_kafka_version()
    got = subprocess.run(  # noqa: S603
        [
            "mvn",
            "-q",
            "-B",
            "dependency:copy",
            f"-Dartifact=org.apache.kafka:kafka-tools:{version}",
            f"-DoutputDirectory={folder}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-2000:]
    return folder / f"kafka-tools-{version}.jar"


def _shims(folder: Path) -> Path:
    """The image's three scripts as this machine runs those main classes on the broker's jars."""
    from vigil.infra.stack.jars import ensure_kafka_jars, java_cmd
    from vigil.infra.stack.processes import StackPaths

    home = folder / "jars-home"
    link_cached_kafka_jars(home)
    paths = StackPaths(home)
    ensure_kafka_jars(paths)
    tools = _kafka_tools_jar(folder / "tools")
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    mains = {
        "kafka-storage.sh": "kafka.tools.StorageTool",
        "kafka-server-start.sh": "kafka.Kafka",
        "kafka-broker-api-versions.sh": "org.apache.kafka.tools.BrokerApiVersionsCommand",
        "kafka-metadata-quorum.sh": "org.apache.kafka.tools.MetadataQuorumCommand",  # the probe of the controllers
        "kafka-features.sh": "org.apache.kafka.tools.FeatureCommand",  # operations.md's finalizing of an upgrade
    }
    for name, main in mains.items():
        argv = java_cmd(paths, folder, folder / f"{name}.log", 512, main)
        argv[argv.index("-cp") + 1] += f":{tools}"
        (bin_dir / name).write_text(f'#!/bin/sh\nexec {shlex.join(argv)} "$@"\n')
        (bin_dir / name).chmod(0o755)
    return bin_dir


def healthcheck(kafka: ComposeKafka, *nodes: Node) -> bool:
    """compose's healthcheck of each Kafka service (of ``nodes``, else all), run here."""
    results = []
    for node in nodes or kafka.nodes:
        test = compose_service(node.service)["healthcheck"]["test"]
        assert test[0] == "CMD-SHELL"
        command = (
            test[1]
            .replace("/opt/kafka/bin/", f"{kafka.shims}/")
            .replace("localhost:9092", f"localhost:{node.port}")
            .replace("/tmp/vigil-kafka/", f"{node.env['KAFKA_RUN_DIR']}/")
        )
        results.append(subprocess.run([*SH, "-c", command], timeout=60).returncode == 0)  # noqa: S603 - the image's sh -c
    return all(results)


def _client(kafka: ComposeKafka, user: str | None, password: str | None, protocol: str = "SASL_SSL") -> dict:
    options: dict = {"bootstrap_servers": kafka.bootstrap, "security_protocol": protocol}
    if protocol != "PLAINTEXT":
        options.update(ssl_cafile=str(kafka.folder / "tls" / "ca.pem"), ssl_check_hostname=True)
    if user is not None:
        options.update(sasl_mechanism="SCRAM-SHA-512", sasl_plain_username=user, sasl_plain_password=password)
    return options


def _controller_handshake(kafka: ComposeKafka, port: int) -> str:
    """A TLS handshake with a controller listener without a client certificate: "ok" when the
    controller keeps the connection open (it waits for a request), "refused" when it drops it."""
    import socket
    import ssl

    context = ssl.create_default_context(cafile=str(kafka.folder / "tls" / "ca.pem"))
    try:
        with (
            socket.create_connection(("localhost", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.settimeout(3)  # TLS 1.3: the server's verdict on the client's certificate comes after the handshake
            try:
                return "refused" if tls.recv(1) == b"" else "ok"
            except TimeoutError:
                return "ok"
    except (ssl.SSLError, ConnectionError):
        return "refused"


def _quorum_as(kafka: ComposeKafka, port: int, cert: Path) -> subprocess.CompletedProcess[str]:
    """kafka-metadata-quorum.sh against a controller listener, presenting ``cert`` (key and chain)."""
    config = kafka.folder / f"quorum-{cert.stem}.properties"
    ca = kafka.folder / "tls" / "ca.pem"
    config.write_text(
        "security.protocol=SSL\nssl.keystore.type=PEM\n"
        f"ssl.keystore.location={cert}\nssl.truststore.type=PEM\nssl.truststore.location={ca}\n"
    )
    probe = [str(kafka.shims / "kafka-metadata-quorum.sh"), "--bootstrap-controller", f"localhost:{port}"]
    return subprocess.run(  # noqa: S603
        [*probe, "--command-config", str(config), "describe", "--status"], capture_output=True, text=True, timeout=120
    )


def _features(kafka: ComposeKafka, node: Node, *command: str) -> subprocess.CompletedProcess[str]:
    """kafka-features.sh in ``node``'s container, signed in as its healthcheck is (docs/operations.md,
    "Upgrading Kafka", runs it so with ``docker compose exec``)."""
    client = f"{node.env['KAFKA_RUN_DIR']}/client.properties"
    tool = [str(kafka.shims / "kafka-features.sh"), "--bootstrap-server", f"localhost:{node.port}"]
    return subprocess.run(  # noqa: S603
        [*tool, "--command-config", client, *command], capture_output=True, text=True, timeout=120
    )


def _attempt(action) -> str:  # type: ignore[no-untyped-def]
    try:
        action()
        return "ok"
    except Exception as exc:  # what the broker (or the client refusing it) answered
        return type(exc).__name__


def _admin(options: dict):  # type: ignore[no-untyped-def]
    from kafka import KafkaAdminClient

    return KafkaAdminClient(request_timeout_ms=5000, bootstrap_timeout_ms=6000, client_id="compose-probe", **options)


def _metadata(options: dict) -> str:
    def list_topics() -> None:
        admin = _admin(options)
        try:
            admin.list_topics()
        finally:
            admin.close()

    return _attempt(list_topics)


def _produce(options: dict, topic: str) -> str:
    from kafka import KafkaProducer

    producer = KafkaProducer(max_block_ms=10_000, retries=0, **options)
    try:
        return _attempt(lambda: producer.send(topic, key=b"compose-probe", value=b"{}").get(timeout=15))
    finally:
        producer.close(timeout=5)


def test_compose_kafka_lets_in_only_its_users_each_to_its_role(compose_kafka: ComposeKafka) -> None:
    kafka = compose_kafka
    assert wait_for(lambda: healthcheck(kafka), 90), "compose's healthcheck of kafka failed"
    admin_pw, service_pw = kafka.password("kafka_admin_password"), kafka.password("kafka_password")
    ingest_pw = kafka.password("kafka_ingest_password")
    # before kafka-access: the super user only
    assert _metadata(_client(kafka, "vigil-broker", admin_pw)) == "ok"
    assert _metadata(_client(kafka, "vigil", service_pw)) != "ok"

    access = kafka.vigil("kafka-access", "--json")
    assert access.returncode == 0, access.stdout[-2000:] + access.stderr[-2000:]
    summary = json.loads(access.stdout.strip().splitlines()[-1])
    assert summary["users"] == ["vigil", "vigil-ingest", "vigil-subscriber"] and summary["applied"] is True
    assert summary["written"] == summary["acls"] == 33
    made = kafka.vigil("topics", "--json")
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    # compose's spec on three nodes: every topic on all three, written to at least two
    made_topics = json.loads(made.stdout.strip().splitlines()[-1])["topics"]
    assert {(t["replication_factor"], t["min_insync_replicas"], t["partitions"]) for t in made_topics} == {(3, 2, 12)}
    wrong = kafka.vigil("topics", kafka_password="not-the-password-at-all")
    lines = wrong.stderr.strip().splitlines()
    assert wrong.returncode != 0 and len(lines) == 1 and "did not let this client in" in lines[0], wrong.stderr

    service = _client(kafka, "vigil", service_pw)
    results = {
        "PLAINTEXT": _metadata(_client(kafka, None, None, "PLAINTEXT")),
        "TLS without a user": _metadata(_client(kafka, None, None, "SSL")),
        "vigil with a wrong password": _metadata(_client(kafka, "vigil", "not-the-password-at-all")),
        "vigil-subscriber with the ingest password": _metadata(_client(kafka, "vigil-subscriber", ingest_pw)),
        "vigil describes the cluster": _metadata(service),
        "vigil writes vigil.scores": _produce(service, topics.SCORES),
        "vigil-ingest writes vigil.events.raw": _produce(_client(kafka, "vigil-ingest", ingest_pw), topics.EVENTS_RAW),
        "vigil-ingest writes vigil.alerts": _produce(_client(kafka, "vigil-ingest", ingest_pw), topics.ALERTS),
    }
    allowed = (
        "vigil describes the cluster",
        "vigil writes vigil.scores",
        "vigil-ingest writes vigil.events.raw",
    )
    assert {k: results[k] for k in allowed} == dict.fromkeys(allowed, "ok"), results
    refused = {k: v for k, v in results.items() if k not in allowed}
    assert all(v != "ok" for v in refused.values()), refused
    assert results["vigil-ingest writes vigil.alerts"] == "TopicAuthorizationFailedError", results

    # the controllers let in only a client certificate of compose's CA (mutual TLS), and answer only
    # compose's Kafka certificate (their super user): not the dashboard's
    controller = int(kafka.nodes[0].env["KAFKA_CONTROLLER_PORT"])
    assert _controller_handshake(kafka, controller) == "refused"
    nodes = _quorum_as(kafka, controller, kafka.folder / "tls" / "kafka.pem")
    assert nodes.returncode == 0 and "CurrentVoters" in nodes.stdout, nodes.stdout[-2000:] + nodes.stderr[-2000:]
    web = _quorum_as(kafka, controller, kafka.folder / "tls" / "web.pem")
    assert web.returncode != 0 and "ClusterAuthorizationException" in web.stdout + web.stderr, web.stdout + web.stderr

    # a new volume runs at this Kafka's own metadata version, and the command that finalizes an upgrade
    # (operations.md) signs in with what kafka-start.sh wrote: on a current cluster it changes nothing
    release = ".".join(pom_kafka_version().split(".")[:2])  # 4.3.2 -> 4.3
    described = _features(kafka, kafka.nodes[1], "describe")
    metadata = [line.split() for line in described.stdout.splitlines() if "Feature: metadata.version" in line]
    assert metadata, described.stdout[-2000:] + described.stderr[-2000:]
    assert metadata[0][metadata[0].index("FinalizedVersionLevel:") + 1].startswith(f"{release}-IV"), metadata
    finalize = _features(kafka, kafka.nodes[0], "upgrade", "--release-version", release)
    assert finalize.returncode == 0, finalize.stdout[-2000:] + finalize.stderr[-2000:]

    # the service may not make itself more: ACLs are the super user's
    from vigil.infra.kafka_access import Grant, apply_grants

    admin = _admin(service)
    try:
        grab = Grant("service", "User:vigil-ingest", "topic", topics.ALERTS, "literal", "WRITE")
        assert apply_grants(admin, [grab]).refused[0][1] == "ClusterAuthorizationFailedError"
    finally:
        admin.close()
    # no password in a log or the script's output
    out = kafka.output()
    assert not any(pw in out + access.stdout + access.stderr for pw in (admin_pw, service_pw, ingest_pw))
    # nor in the brokers' environment (compose's secret is a file): `docker inspect` would show it
    for node in kafka.nodes:
        assert node.proc is not None
        assert admin_pw.encode() not in Path(f"/proc/{node.proc.pid}/environ").read_bytes()
    assert (Path(kafka.env["KAFKA_RUN_DIR"]) / "server.properties").stat().st_mode & 0o777 == 0o600


def test_a_restart_keeps_the_users_and_an_old_volume_or_a_bad_password_stops_the_start(
    compose_kafka: ComposeKafka, tmp_path: Path
) -> None:
    kafka = compose_kafka
    assert kafka.vigil("kafka-access").returncode == 0
    service = _client(kafka, "vigil", kafka.password("kafka_password"))
    assert _metadata(service) == "ok"
    # restart on the same volume: not formatted again, the users are kept
    kafka.stop()
    assert wait_for(lambda: not any(port_open("127.0.0.1", node.port) for node in kafka.nodes), 60)
    kafka.start()
    assert wait_for(lambda: healthcheck(kafka), 180), kafka.output()[-3000:]
    assert _metadata(service) == "ok"

    def start_with(**changes: str) -> subprocess.CompletedProcess[str]:
        env = {**kafka.env, **changes}
        return subprocess.run([*SH, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)  # noqa: S603

    old = tmp_path / "old-volume"
    old.mkdir()
    (old / "meta.properties").write_text("version=1\n")  # formatted by the image's own start, without users
    stopped = start_with(KAFKA_DATA_DIR=str(old))
    assert stopped.returncode == 2 and "formatted without Vigil's super user" in stopped.stderr
    assert len(stopped.stderr.strip().splitlines()) == 1
    bad_file = tmp_path / "bad_admin_password"
    for bad in ("short", 'a"' * 12, "a" * 20 + ",password=x", "a" * 20 + " b"):
        bad_file.write_text(bad + "\n")
        stopped = start_with(VIGIL_KAFKA_ADMIN_PASSWORD_FILE=str(bad_file))
        assert stopped.returncode == 2 and "VIGIL_KAFKA_ADMIN_PASSWORD needs" in stopped.stderr, stopped.stderr
    stopped = start_with(VIGIL_KAFKA_ADMIN_PASSWORD=kafka.password("kafka_admin_password"))  # and its file
    assert stopped.returncode == 2 and "keep one" in stopped.stderr, stopped.stderr
    stopped = start_with(VIGIL_KAFKA_ADMIN_PASSWORD_FILE=str(tmp_path / "nowhere"))
    assert stopped.returncode == 2 and "vigil stack compose-secrets" in stopped.stderr, stopped.stderr
    stopped = start_with(KAFKA_CLUSTER_ID="")  # three voters: the nodes must agree on one cluster
    assert stopped.returncode == 2 and "KAFKA_CLUSTER_ID must be set" in stopped.stderr, stopped.stderr
    stopped = start_with(KAFKA_NODE_ID="4")
    assert stopped.returncode == 2 and "does not name this node" in stopped.stderr, stopped.stderr
    missing = start_with(KAFKA_BROKER_PEM=str(tmp_path / "nowhere.pem"))
    assert missing.returncode == 2 and "vigil stack compose-tls" in missing.stderr
