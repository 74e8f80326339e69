"""Embedded Apache Kafka 4.x in KRaft mode on loopback: one combined broker+controller node (the
default of the demo and the tests) or a cluster of ``settings.kafka.brokers`` such nodes forming
one controller quorum (``vigil stack up --brokers 3``: three JVMs, small heaps).

Secure mode (``settings.kafka.security_protocol == "SASL_SSL"``): the client and inter-broker
listener is SASL_SSL (SCRAM-SHA-512, certificate from a local CA, ``tls.py``); the controller
listener, bound to loopback, takes only TLS with the broker certificate (mutual TLS), and Kafka ACLs
give each client user its role's grants only (``access.py``, ``infra.kafka_access``).
"""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from pathlib import Path

from vigil.infra.connect import SCRAM_MECHANISM, kafka_admin, kafka_endpoint
from vigil.infra.secrets import KAFKA_BROKER_USER, KAFKA_CLIENT_USER, write_private
from vigil.infra.settings import Settings
from vigil.infra.stack.access import grant_roles
from vigil.infra.stack.jars import ensure_kafka_jars, java_argfile, java_cmd, require_java
from vigil.infra.stack.processes import (
    StackError,
    StackPaths,
    free_port_series,
    pid_alive,
    port_open,
    server_started,
    start_daemon,
    stop_pid,
    stop_pids,
)
from vigil.infra.stack.tls import LOOPBACK_NAMES, SecureMaterial, ensure_secure_material

HOST = "127.0.0.1"
# the broker certificate's subject (infra.stack.tls: its first name), as Kafka names the principal of
# a client certificate on the controller listener
CONTROLLER_PRINCIPAL = f"User:CN={LOOPBACK_NAMES[0]}"


def heap_mb(settings: Settings) -> int:
    k = settings.kafka
    return k.embedded_heap_mb or (768 if k.brokers == 1 else 320)


def node_dir(settings: Settings, index: int) -> Path:
    return StackPaths(settings.home).node(index, settings.kafka.brokers)


def node_log(settings: Settings, index: int) -> Path:
    name = "kafka" if settings.kafka.brokers == 1 else f"kafka-node-{index}"
    return StackPaths(settings.home).logs / f"{name}.log"


def node_pid_file(settings: Settings, index: int) -> Path:
    return node_dir(settings, index) / "kafka.pid"


def _listener_properties(port: int, controller_port: int, material: SecureMaterial | None) -> list[str]:
    if material is None:
        return [
            f"listeners=PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{port}",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        ]
    # Clients (and the brokers to each other) only through SASL_SSL. The KRaft controller listener,
    # bound to loopback, takes only TLS with a client certificate of the stack's CA (mutual TLS): the
    # nodes present the broker certificate (<home>/tls/broker.pem, 0600), whose principal is the
    # controllers' super user; a local process without it gets nothing there (until 6 December 2026
    # the listener was PLAINTEXT and ANONYMOUS a super user).
    jaas = (
        f"org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{KAFKA_BROKER_USER}" password="{material.broker_password.get_secret_value()}";'
    )
    return [
        f"listeners=SASL_SSL://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        f"advertised.listeners=SASL_SSL://{HOST}:{port}",
        "inter.broker.listener.name=SASL_SSL",
        "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SSL",
        f"sasl.enabled.mechanisms={SCRAM_MECHANISM}",
        f"sasl.mechanism.inter.broker.protocol={SCRAM_MECHANISM}",
        f"listener.name.sasl_ssl.{SCRAM_MECHANISM.lower()}.sasl.jaas.config={jaas}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={material.broker_pem}",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={material.ca_file}",
        "ssl.client.auth=none",
        "listener.name.controller.ssl.client.auth=required",
        "ssl.enabled.protocols=TLSv1.3,TLSv1.2",
        # Kafka ACLs: each client user may do what its role needs (infra.kafka_access), nothing
        # without a grant. The brokers are super users: as vigil-broker to each other, and as the
        # broker certificate's subject on the controller listener
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        f"super.users=User:{KAFKA_BROKER_USER};{CONTROLLER_PRINCIPAL}",
        "allow.everyone.if.no.acl.found=false",
    ]


def node_properties(settings: Settings, index: int, material: SecureMaterial | None = None) -> str:
    k = settings.kafka
    ports = k.node_ports()
    port, controller_port = ports[index]
    e = kafka_endpoint(settings)
    voters = ",".join(f"{i + 1}@{HOST}:{c}" for i, (_, c) in enumerate(ports))
    rf, isr = e.replication_factor, e.min_insync_replicas
    return "\n".join(
        [
            "process.roles=broker,controller",
            f"node.id={index + 1}",
            f"controller.quorum.voters={voters}",
            *_listener_properties(port, controller_port, material),
            "controller.listener.names=CONTROLLER",
            f"log.dirs={node_dir(settings, index) / 'data'}",
            f"num.partitions={k.partitions}",
            "auto.create.topics.enable=true",
            # Replication of everything the brokers create themselves (auto-created topics, group
            # offsets, transactions): the same factor and min ISR as Vigil's own topics.
            f"default.replication.factor={rf}",
            f"min.insync.replicas={isr}",
            f"offsets.topic.replication.factor={rf}",
            "offsets.topic.num.partitions=8",
            f"transaction.state.log.replication.factor={rf}",
            f"transaction.state.log.min.isr={isr}",
            f"share.coordinator.state.topic.replication.factor={rf}",
            f"share.coordinator.state.topic.min.isr={isr}",
            # Let the first consumer join its group at once instead of waiting the default 3 s
            # for others (the first event flows within seconds).
            "group.initial.rebalance.delay.ms=0",
            # 24 h: retention deletes closed segments only, and a quiet topic's segment (the dead
            # letters' original bytes, the audit) closed at 64 MB or after 7 days (log.roll.hours'
            # default): such topics were kept 8 days. Rolled hourly, and capped in bytes per partition
            "log.retention.hours=24",
            "log.roll.hours=1",
            "log.retention.bytes=1073741824",
            "log.segment.bytes=67108864",
            "num.network.threads=2",
            "num.io.threads=4" if k.brokers == 1 else "num.io.threads=2",
            "",
        ]
    )


def _cluster_id(paths: StackPaths) -> str:
    """One id for every node of this home's cluster, kept beside the nodes."""
    path = paths.kafka / "cluster.id"
    if not path.exists():
        path.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
    return path.read_text().strip()


def _scram_args(material: SecureMaterial | None) -> list[str]:
    """SCRAM users are created in the metadata log at format time (KRaft has no ZooKeeper). They
    hold the passwords: ``_format_storage`` hands them to Java in a private @argfile, never on the
    command line (``ps`` showed the service's and the brokers' super user's)."""
    if material is None:
        return []
    users = ((KAFKA_CLIENT_USER, material.kafka_password), (KAFKA_BROKER_USER, material.broker_password))
    return [
        arg
        for name, pw in users
        for arg in ("--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={pw.get_secret_value()}]")
    ]


def _format_storage(settings: Settings, index: int, config: Path, material: SecureMaterial | None) -> None:
    """Format the node's storage (StorageTool), its SCRAM users included. The tool's arguments go in
    a 0600 @argfile in the node's folder (the home is 0700), removed as soon as the tool ends."""
    paths = StackPaths(settings.home)
    folder = node_dir(settings, index)
    argfile = folder / "format.args"
    # "--cluster-id=" form: a random id may start with "-" and would parse as an option
    tool = ["kafka.tools.StorageTool", "format", f"--cluster-id={_cluster_id(paths)}", "-c", str(config)]
    write_private(argfile, java_argfile([*tool, "--ignore-formatted", *_scram_args(material)]))  # 0600
    try:
        proc = subprocess.run(
            java_cmd(paths, folder, node_log(settings, index), heap_mb(settings), f"@{argfile}"),
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        argfile.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise StackError(f"formatting Kafka storage failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")


def _prepare_node(settings: Settings, index: int, material: SecureMaterial | None) -> list[str]:
    """Write the node's configuration; format its storage on first start. Returns its command."""
    require_java()  # Java 11 failed the format in a many-line UnsupportedClassVersionError
    paths = StackPaths(settings.home)
    folder = node_dir(settings, index)
    data = folder / "data"
    config = folder / "server.properties"
    folder.mkdir(parents=True, exist_ok=True)
    # 0600: in secure mode the file holds the broker's own SCRAM password
    write_private(config, node_properties(settings, index, material).encode())
    scram_marker = data / ".vigil-scram"
    if material is not None and (data / "meta.properties").exists() and not scram_marker.exists():
        raise StackError(
            f"{data} was formatted without SCRAM users; run `vigil stack down --wipe` before `vigil stack up --secure`"
        )
    log_file = node_log(settings, index)
    if not (data / "meta.properties").exists():
        _format_storage(settings, index, config, material)
        if material is not None:
            scram_marker.touch()
    return java_cmd(paths, folder, log_file, heap_mb(settings), "kafka.Kafka", str(config))


def start_kafka(settings: Settings, timeout_s: float = 120.0, only: int | None = None) -> str:
    """Start every embedded node that is not running (or only node ``only``) and wait until the
    cluster serves metadata with all its brokers. Idempotent. Returns the bootstrap list."""
    paths = StackPaths(settings.home)
    ports = settings.kafka.node_ports()
    ensure_kafka_jars(paths)
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.kafka.mkdir(parents=True, exist_ok=True)
    material = None
    if settings.kafka.security_protocol == "SASL_SSL":
        running = any(pid_alive(pid_file) is not None for pid_file in paths.node_pid_files())
        material = ensure_secure_material(settings.home, renew=not running)
    children: dict[int, subprocess.Popen[bytes]] = {}
    for index, (port, controller) in enumerate(ports):
        if only is not None and index != only:
            continue
        if server_started(node_pid_file(settings, index), port):
            # running, or still booting (a Ctrl-C'd `stack up`, log recovery after an unclean stop):
            # wait_kafka_ready waits for its port. Started again, a second JVM took the same data
            # folder and the pid file, and the first was left where `stack down` could not stop it
            continue
        for taken, setting in ((port, "EMBEDDED_PORT"), (controller, "EMBEDDED_CONTROLLER_PORT")):
            if port_open(HOST, taken):
                raise StackError(port_taken_hint(settings, taken, setting))
        command = _prepare_node(settings, index, material)
        out = paths.logs / ("kafka.out" if len(ports) == 1 else f"kafka-node-{index}.out")
        children[index] = start_daemon(command, out, node_pid_file(settings, index))
    wait_kafka_ready(settings, children, timeout_s)
    if material is not None:
        grant_roles(settings, material)
    return kafka_endpoint(settings).bootstrap


def port_taken_hint(settings: Settings, port: int, setting: str) -> str:
    """One line for a node's ``port`` taken by another process: the ``setting``
    (``EMBEDDED_PORT`` or ``EMBEDDED_CONTROLLER_PORT``) to change, and a value whose ports are free
    and clash with none of the stack's others (the other listener's, the embedded Redis'). The value
    is of the other parity than the other listener's base (docs/operations.md: an even and an odd
    base never meet, whatever the number of nodes), and the settings accept it with the brokers they
    run: 19094 for a taken controller port 19093 fitted one node, and ``--brokers 3`` then refused it."""
    from vigil.schemas.errors import UserError

    k = settings.kafka
    client = setting == "EMBEDDED_PORT"
    ports = k.node_ports()
    avoid = {c for _, c in ports} if client else {p for p, _ in ports}
    if settings.redis.url is None:
        avoid.add(settings.redis.embedded_port)
    other_base = k.embedded_controller_port if client else k.embedded_port

    def unusable(candidate: int) -> bool:  # the other listener's parity, or another program's port
        return (candidate - other_base) % 2 == 0 or port_open(HOST, candidate)

    start = (k.embedded_port if client else k.embedded_controller_port) + 1
    while (free := free_port_series(start, k.brokers, avoid, unusable)) is not None:
        try:
            settings.with_kafka(**{"embedded_port" if client else "embedded_controller_port": free})
            break
        except UserError:  # not a value these settings accept with their brokers: the next series
            start = free + 1
    value = "<another port>" if free is None else str(free)
    return f"port {port} is taken by another process; set VIGIL_KAFKA__{setting}={value}"


def wait_kafka_ready(
    settings: Settings, children: dict[int, subprocess.Popen[bytes]] | None = None, timeout_s: float = 120.0
) -> None:
    """Until every node listens and the cluster answers metadata requests with all ``brokers``
    registered (a killed node stays registered, fenced, for a while: its port tells it is back)."""
    paths = StackPaths(settings.home)
    want = settings.kafka.brokers
    ports = [port for port, _ in settings.kafka.node_ports()]
    deadline = time.monotonic() + timeout_s
    last_error: object = None
    while time.monotonic() < deadline:
        for index, child in (children or {}).items():
            if child.poll() is not None:
                out = paths.logs / ("kafka.out" if want == 1 else f"kafka-node-{index}.out")
                tail = out.read_text(errors="replace")[-3000:]
                raise StackError(f"Kafka node {index} exited with code {child.returncode}:\n{tail}")
        if not all(port_open(HOST, port) for port in ports):
            last_error = "not every node listens yet"
            time.sleep(0.5)
            continue
        try:
            admin = kafka_admin(settings, request_timeout_ms=3000, client_id="vigil-stack")
            try:
                brokers = admin.describe_cluster().get("brokers", [])
                if len(brokers) >= want:
                    return
                last_error = f"{len(brokers)} of {want} brokers registered"
            finally:
                admin.close()
        except Exception as exc:  # brokers still starting: not an error yet
            last_error = exc
        time.sleep(0.5)
    raise StackError(f"Kafka at {kafka_endpoint(settings).bootstrap} not ready after {timeout_s:.0f}s: {last_error}")


def stop_kafka(settings: Settings, only: int | None = None) -> bool:
    """Stop this home's brokers (all of them, whatever the cluster size), or node ``only``."""
    paths = StackPaths(settings.home)
    if only is not None:
        return stop_pid(node_pid_file(settings, only))
    return stop_pids(paths.node_pid_files())  # together: one by one, the last waited for a quorum gone
