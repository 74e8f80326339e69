"""Secure embedded stack: Kafka SASL_SSL (SCRAM-SHA-512, local CA) and Redis with an ACL user.
Authenticated workers score end to end; unauthenticated clients are refused; secrets are 0600."""

from __future__ import annotations

import stat
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import wait_for
from tests.reliability.helpers import report
from vigil.schemas import topics

pytestmark = pytest.mark.reliability


def _client_options(settings) -> dict:
    """kafka-python security options as every Vigil client gets them (without the bootstrap)."""
    from vigil.infra.connect import kafka_options

    return {k: v for k, v in kafka_options(settings).items() if k != "bootstrap_servers"}


def _metadata_ok(bootstrap: str, **options) -> str:
    """'ok' when the broker served metadata to this client, else the error's class name."""
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=5000,
            bootstrap_timeout_ms=6000,
            client_id="sec-probe",
            **options,
        )
    except Exception as exc:  # refused at connect / handshake / authentication
        return type(exc).__name__
    try:
        admin.list_topics()
        return "ok"
    except Exception as exc:
        return type(exc).__name__
    finally:
        admin.close()


def test_secrets_are_private_and_never_in_logs(secure_settings, secure_stack) -> None:
    settings, info = secure_settings, secure_stack
    home = settings.home
    secret_files = [
        *(home / "secrets").iterdir(),
        home / "tls" / "ca.key",
        home / "tls" / "broker.pem",
        home / "kafka" / "server.properties",
        home / "redis" / "auth.conf",
    ]
    modes = {str(p.relative_to(home)): oct(stat.S_IMODE(p.stat().st_mode)) for p in secret_files}
    assert all(m == "0o600" for m in modes.values()), modes
    assert oct(stat.S_IMODE((home / "secrets").stat().st_mode)) == "0o700"
    secrets = [p.read_text().strip() for p in (home / "secrets").iterdir()]
    logs = "\n".join(p.read_text(errors="replace") for p in (home / "logs").glob("*") if p.is_file())
    assert not any(s in logs for s in secrets), "a generated secret reached a log"
    assert not any(s in repr(info) or s in str(info.as_dict()) for s in secrets)


def test_unauthenticated_kafka_clients_are_refused(secure_settings, secure_stack, results_dir) -> None:
    settings, info = secure_settings, secure_stack
    broker_log = settings.home / "logs" / "kafka.log"

    def broker_auth_failures() -> list[str]:
        text = broker_log.read_text(errors="replace") if broker_log.exists() else ""
        return [line for line in text.splitlines() if "Failed authentication" in line]

    good = _client_options(settings)
    results = {"authenticated": _metadata_ok(info.bootstrap, **good), "plaintext": _metadata_ok(info.bootstrap)}
    results["tls_without_sasl"] = _metadata_ok(info.bootstrap, security_protocol="SSL", ssl_cafile=good["ssl_cafile"])
    before = len(broker_auth_failures())
    results["wrong_password"] = _metadata_ok(info.bootstrap, **{**good, "sasl_plain_password": "not-it"})
    results["unknown_user"] = _metadata_ok(info.bootstrap, **{**good, "sasl_plain_username": "mallory"})
    # the broker says why (kafka-python 3 only sees the connection close): the SCRAM exchange failed
    assert wait_for(lambda: len(broker_auth_failures()) >= before + 2, timeout=10), broker_auth_failures()[-3:]
    failures = broker_auth_failures()[before:]
    results["broker_logged_authentication_failures"] = len(failures)
    # the KRaft controller listener answers neither a plain request (it did, as ANONYMOUS, a super
    # user, until 6 December 2026) nor TLS without the broker certificate (mutual TLS)
    results["controller_plaintext"] = _controller_answers(settings.kafka.embedded_controller_port, None)
    results["controller_tls_without_certificate"] = _controller_answers(
        settings.kafka.embedded_controller_port, good["ssl_cafile"]
    )
    report(results_dir, "security_kafka", results)
    assert results["authenticated"] == "ok"
    assert all(
        v != "ok" for k, v in results.items() if k not in ("authenticated", "broker_logged_authentication_failures")
    )
    assert all("invalid credentials" in line for line in failures), failures[:2]
    secrets = [p.read_text().strip() for p in (settings.home / "secrets").iterdir()]
    assert not any(s in line for s in secrets for line in failures)


def _controller_answers(port: int, cafile: str | None) -> str:
    """An ApiVersions request to the KRaft controller listener, in plain TCP (``cafile`` None) or
    over TLS without a client certificate: "ok" when the controller answers it (as it answered
    ANONYMOUS on the PLAINTEXT listener of before), else why not."""
    import socket
    import ssl
    import struct

    client = b"probe"
    body = struct.pack(">hhih", 18, 0, 7, len(client)) + client  # ApiVersions v0, correlation id 7
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            sock = raw
            if cafile is not None:
                context = ssl.create_default_context(cafile=cafile)
                sock = context.wrap_socket(raw, server_hostname="127.0.0.1")
            sock.sendall(struct.pack(">i", len(body)) + body)
            answer = sock.recv(8)
            return "ok" if len(answer) == 8 and struct.unpack(">i", answer[4:])[0] == 7 else "closed"
    except (OSError, ssl.SSLError) as exc:
        return type(exc).__name__


def test_redis_requires_password_and_acl_limits_the_worker_user(secure_settings, secure_stack, results_dir) -> None:
    import redis

    from vigil.infra.connect import redis_endpoint

    settings, info = secure_settings, secure_stack
    creds = redis_endpoint(settings)
    anonymous = redis.Redis.from_url(info.redis_url, socket_timeout=2)
    with pytest.raises(redis.AuthenticationError):  # NOAUTH: no password, no access
        anonymous.ping()
    wrong = redis.Redis.from_url(info.redis_url, username=creds.username, password="nope", socket_timeout=2)
    with pytest.raises(redis.AuthenticationError):
        wrong.ping()
    worker_user = redis.Redis.from_url(
        info.redis_url, username=creds.username, password=creds.password.get_secret_value(), socket_timeout=2
    )
    assert worker_user.ping()
    worker_user.set("vigil:security-test", b"1", ex=60)
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker_user.set("other:key", b"1")  # only vigil:* keys
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker_user.flushall()  # no @dangerous commands
    report(
        results_dir,
        "security_redis",
        {
            "anonymous": "refused",
            "wrong_password": "refused",
            "acl_user_keys": "vigil:* only",
            "acl_user_flushall": "refused",
        },
    )


def as_user(settings, user: str):
    """``settings`` connecting as another SCRAM user of the stack (its generated password)."""
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"sasl_username": user})})


def test_worker_scores_over_sasl_ssl(secure_settings, secure_stack, tmp_path) -> None:
    """An EHR integration's event (as vigil-ingest) is scored by the worker (the service) and read
    by a monitoring system (as vigil-subscriber, in a group of its own prefix)."""
    from vigil.infra.connect import kafka_consumer, kafka_producer
    from vigil.infra.readback import TopicReader
    from vigil.infra.secrets import KAFKA_INGEST_USER, KAFKA_SUBSCRIBER_USER
    from vigil.infra.workers import spawn_worker, stop_worker
    from vigil.schemas.events import PatientEvent

    settings = secure_settings
    reader = TopicReader(settings).start()
    log = tmp_path / "secure-worker.log"
    worker = spawn_worker(settings, log)
    producer = kafka_producer(as_user(settings, KAFKA_INGEST_USER))
    subscriber = kafka_consumer(
        as_user(settings, KAFKA_SUBSCRIBER_USER),
        group_id=f"vigil-subscriber-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",  # a new group: from the start of the (fresh) stack's scores
    )
    subscriber.subscribe([topics.SCORES])
    try:
        event = PatientEvent(
            patient_id=f"sec-{uuid.uuid4().hex[:8]}",
            kind="vital",
            code="HR",
            value=90,
            unit="/min",
            observed_at=datetime.now(UTC) - timedelta(minutes=2),
        )
        producer.send(topics.EVENTS_RAW, key=event.patient_id.encode(), value=event.model_dump_json().encode())
        producer.flush()
        assert wait_for(lambda: event.event_id in reader.snapshot().scored_ids, timeout=120), log.read_text()[-3000:]
        assert worker.poll() is None
        seen: list[bytes] = []

        def subscriber_read_it() -> bool:
            seen.extend(r.key for rs in subscriber.poll(timeout_ms=1000).values() for r in rs)
            return event.patient_id.encode() in seen

        assert wait_for(subscriber_read_it, timeout=60)
        secrets = [p.read_text().strip() for p in (settings.home / "secrets").iterdir()]
        assert not any(s in log.read_text() for s in secrets), "the worker logged a secret"
    finally:
        subscriber.close()
        producer.close()
        reader.stop()
        stop_worker(worker)


def _attempt(action) -> str:
    """'ok', or the class name of what the broker answered."""
    try:
        action()
        return "ok"
    except Exception as exc:
        return type(exc).__name__


def test_each_role_is_refused_what_it_does_not_need(secure_settings, secure_stack, results_dir) -> None:
    """Kafka ACLs: an EHR integration's credentials cannot forge an alert or read scores; a pager
    gateway's cannot inject an observation, read the dead letters or join the workers' group."""
    from kafka import TopicPartition

    from vigil.infra.connect import kafka_consumer, kafka_producer
    from vigil.infra.secrets import KAFKA_INGEST_USER, KAFKA_SUBSCRIBER_USER

    settings = secure_settings
    service = kafka_producer(settings)
    for topic in (topics.SCORES, topics.DEADLETTER, topics.ALERTS):  # something there to be refused
        service.send(topic, key=b"acl-probe", value=b"{}", partition=0)
    service.flush()
    service.close()

    def produce(user: str, topic: str) -> str:
        producer = kafka_producer(as_user(settings, user), max_block_ms=10_000, retries=0)
        try:
            return _attempt(lambda: producer.send(topic, key=b"acl-probe", value=b"{}").get(timeout=15))
        finally:
            producer.close(timeout=5)

    def consume(user: str, topic: str, group: str | None = None) -> str:
        consumer = kafka_consumer(
            as_user(settings, user), group_id=group, enable_auto_commit=False, auto_offset_reset="earliest"
        )

        def read() -> None:
            # a topic it may not describe: the offset lookup raises (kafka-python's poll would only
            # wait); one it may describe but not read: the fetch raises
            consumer.beginning_offsets([TopicPartition(topic, 0)])
            if group is None:
                consumer.assign([TopicPartition(topic, 0)])
            else:
                consumer.subscribe([topic])
            got: dict = {}
            deadline = 20
            while not got and deadline:  # a record read, or the broker's refusal raised
                got, deadline = consumer.poll(timeout_ms=1000), deadline - 1
            if not got:
                raise TimeoutError(f"nothing read from {topic}")

        try:
            return _attempt(read)
        finally:
            consumer.close()

    ingest, sub = KAFKA_INGEST_USER, KAFKA_SUBSCRIBER_USER
    results = {
        "ingest writes vigil.events.raw": produce(ingest, topics.EVENTS_RAW),
        "ingest writes vigil.ingest.fhir": produce(ingest, topics.INGEST_FHIR),
        "ingest writes vigil.alerts": produce(ingest, topics.ALERTS),
        "ingest writes vigil.scores": produce(ingest, topics.SCORES),
        "ingest reads vigil.scores": consume(ingest, topics.SCORES),
        "subscriber reads vigil.alerts": consume(sub, topics.ALERTS),
        "subscriber reads vigil.alerts in its group": consume(sub, topics.ALERTS, "vigil-subscriber-pager"),
        "subscriber writes vigil.alerts.acks": produce(sub, topics.ALERT_ACKS),
        "subscriber writes vigil.alerts": produce(sub, topics.ALERTS),
        "subscriber writes vigil.events.raw": produce(sub, topics.EVENTS_RAW),
        "subscriber reads vigil.deadletter": consume(sub, topics.DEADLETTER),
        "subscriber joins the workers' group": consume(sub, topics.ALERTS, settings.app_id),
    }
    report(results_dir, "security_kafka_acls", results)
    assert {k: v for k, v in results.items() if k in ALLOWED} == dict.fromkeys(ALLOWED, "ok")
    refused = {k: v for k, v in results.items() if k not in ALLOWED}
    assert all(v.endswith("AuthorizationFailedError") for v in refused.values()), refused


def test_acls_apply_needs_a_principal_allowed_to_alter_them(secure_settings, secure_stack) -> None:
    """`vigil stack acls --apply`: the service may not write ACLs (one line naming the refusal, exit
    code 2); an administrator (here the brokers' super user) may, and writing them again changes nothing."""
    import json
    import subprocess
    import sys

    from vigil.infra.kafka_access import Principals, access_grants
    from vigil.infra.secrets import KAFKA_BROKER_PASSWORD, KAFKA_BROKER_USER
    from vigil.infra.workers import worker_env

    def acls(extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vigil.cli", "stack", "acls", "--apply", "--json"],
            env=worker_env(secure_settings, extra),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    service = acls({})
    assert service.returncode == 2, service.stdout[-500:] + service.stderr[-500:]
    lines = service.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in service.stderr, service.stderr[-2000:]
    assert "the cluster refused 33 of 33 ACLs" in lines[0] and "ClusterAuthorizationFailedError" in lines[0]
    broker_password = (secure_settings.home / "secrets" / KAFKA_BROKER_PASSWORD).read_text().strip()
    admin = acls({"VIGIL_KAFKA__SASL_USERNAME": KAFKA_BROKER_USER, "VIGIL_KAFKA__SASL_PASSWORD": broker_password})
    assert admin.returncode == 0, admin.stderr[-2000:]
    summary = json.loads(admin.stdout.strip().splitlines()[-1])
    assert summary["applied"] is True and summary["written"] == len(access_grants(Principals())) == 33


ALLOWED = {
    "ingest writes vigil.events.raw",
    "ingest writes vigil.ingest.fhir",
    "subscriber reads vigil.alerts",
    "subscriber reads vigil.alerts in its group",
    "subscriber writes vigil.alerts.acks",
}


def _vigil_refused(settings, env_extra: dict[str, str], *args: str) -> tuple[int, str]:
    """Run `vigil ARGS` as a process connected like ``settings`` plus ``env_extra``, with no
    VIGIL_LOG_HASH_KEY; its exit code and stderr."""
    import subprocess
    import sys

    from vigil.infra.workers import worker_env

    env = worker_env(settings, env_extra)
    env.pop("VIGIL_LOG_HASH_KEY", None)
    proc = subprocess.run(
        [sys.executable, "-m", "vigil.cli", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return proc.returncode, proc.stderr


def test_default_log_key_is_refused_outside_the_embedded_stack(stack, stack_settings, results_dir) -> None:
    external = {"VIGIL_KAFKA__BOOTSTRAP": stack.bootstrap}  # the same broker, named as an external one
    results = {}
    for command in (("worker",), ("serve", "--port", "1")):
        code, stderr = _vigil_refused(stack_settings, external, *command)
        lines = [line for line in stderr.splitlines() if line.strip()]
        results[command[0]] = {"exit_code": code, "stderr_lines": len(lines)}
        assert code == 2 and len(lines) == 1 and "VIGIL_LOG_HASH_KEY" in lines[0], stderr[-2000:]
        assert "Traceback" not in stderr
    report(results_dir, "security_default_secret", results)


def test_embedded_redis_is_maintained_and_refuses_unauthenticated_clients(stack, stack_settings, results_dir) -> None:
    import redis

    from vigil.infra.connect import redis_client
    from vigil.infra.stack.redis_server import redis_binary

    binary = redis_binary(stack_settings)
    admin, worker = redis_client(stack_settings, admin=True), redis_client(stack_settings)
    running = tuple(int(x) for x in admin.info("server")["redis_version"].split("."))
    assert binary.maintained and running == binary.version >= binary.minimum, binary.describe()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(stack.redis_url, socket_timeout=2).ping()  # no password, no access
    for client in (admin, worker):  # no Lua for anyone (CVE-2025-49844 and its kin live there)
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.eval("return 1", 0)
    with pytest.raises(redis.exceptions.NoPermissionError):
        worker.flushall()
    report(
        results_dir,
        "security_embedded_redis",
        {
            "binary": binary.describe(),
            "minimum": ".".join(map(str, binary.minimum)),
            "anonymous": "refused",
            "eval": "refused for both users",
        },
    )


def test_quotas_slow_a_runaway_ehr_client_and_need_an_administrator(secure_settings, secure_stack) -> None:
    """Kafka client quotas (`vigil stack quotas`, infra/kafka_quotas.py): the secure stack writes each
    outside role's; the service may not change them (one line, exit code 2); an administrator may,
    and an EHR integration producing faster than its quota is slowed down by the brokers, not refused."""
    import json
    import subprocess
    import sys
    import time

    from vigil.infra.connect import kafka_admin, kafka_producer
    from vigil.infra.kafka_access import Principals
    from vigil.infra.kafka_quotas import INGEST_BYTES_PER_S, PRODUCE, read_quotas, role_quotas
    from vigil.infra.secrets import KAFKA_BROKER_PASSWORD, KAFKA_BROKER_USER, KAFKA_INGEST_USER
    from vigil.infra.workers import worker_env

    broker_password = (secure_settings.home / "secrets" / KAFKA_BROKER_PASSWORD).read_text().strip()
    as_admin = {"VIGIL_KAFKA__SASL_USERNAME": KAFKA_BROKER_USER, "VIGIL_KAFKA__SASL_PASSWORD": broker_password}

    def quotas(extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "vigil.cli", "stack", "quotas", "--apply", "--json", *args],
            env=worker_env(secure_settings, extra),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    admin_settings = secure_settings.model_copy(
        update={"kafka": secure_settings.kafka.model_copy(update={"sasl_username": KAFKA_BROKER_USER})}
    )
    admin = kafka_admin(admin_settings, client_id="quota-test", sasl_plain_password=broker_password)
    try:
        kept = read_quotas(admin, [q.user for q in role_quotas(Principals())])
    finally:
        admin.close()
    assert kept[KAFKA_INGEST_USER] == {PRODUCE: float(INGEST_BYTES_PER_S)}  # the stack wrote them

    service = quotas({})
    assert service.returncode == 2, service.stdout[-500:] + service.stderr[-500:]
    lines = service.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in service.stderr, service.stderr[-2000:]
    assert "the cluster refused 2 of 2 quotas" in lines[0] and "ClusterAuthorizationFailedError" in lines[0]

    slow = quotas(as_admin, "--ingest-bytes-per-s", "16384")
    assert slow.returncode == 0, slow.stderr[-2000:]
    assert json.loads(slow.stdout.strip().splitlines()[-1])["applied"] is True
    producer = kafka_producer(as_user(secure_settings, KAFKA_INGEST_USER), client_id="runaway-interface")
    try:
        t0 = time.monotonic()
        for n in range(64):  # 256 KiB: a second's worth at 16 KiB/s would be 16 KiB
            producer.send(topics.EVENTS_RAW, key=b"quota-test", value=b"x" * 4096 + str(n).encode())
        producer.flush(timeout=120)
        elapsed = time.monotonic() - t0
        throttled = max((v for name, v in _flat(producer.metrics()) if name.endswith("throttle-time-max")), default=0.0)
    finally:
        producer.close()
        restored = quotas(as_admin)
    assert restored.returncode == 0, restored.stderr[-2000:]
    assert throttled > 0, f"the brokers never slowed the producer down ({elapsed:.1f} s)"


def _flat(metrics: dict, prefix: str = "") -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for key, value in metrics.items():
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
        elif isinstance(value, int | float):
            out.append((f"{prefix}{key}", float(value)))
    return out
