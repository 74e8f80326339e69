"""docker-compose.yml in full, as far as this machine runs it without a Docker engine: compose's Kafka
(``deploy/kafka-start.sh`` on the same jars) and Redis (Debian's redis-server, compose's command)
with one CA from `vigil stack compose-tls`, compose's one-shot ``kafka-access`` and ``topics``, then a
worker with compose's worker environment and command: an EHR integration's event (as vigil-ingest)
is scored, a pager reads the score (as vigil-subscriber), and compose's healthcheck of the worker
passes; the web service serves the dashboard over HTTPS and passes its healthcheck. Every connection
is the compose network's: SASL_SSL to Kafka, TLS to Redis and to the dashboard, each checked against
the compose CA and the server's name."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_for
from tests.integration.test_compose_kafka import ComposeKafka, _client, compose_service, mounted
from vigil.schemas import topics

pytestmark = pytest.mark.integration


def test_composes_worker_scores_over_its_kafka_and_redis(
    compose_kafka: ComposeKafka, compose_redis: tuple[int, str, dict[str, Path]], tmp_path: Path
) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    from vigil.schemas.events import PatientEvent

    kafka = compose_kafka
    redis_port, redis_password, files = compose_redis
    pager_pw = kafka.password("kafka_subscriber_password")
    access = kafka.vigil("kafka-access")
    assert access.returncode == 0, access.stdout[-2000:] + access.stderr[-2000:]
    made = kafka.vigil("topics")
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]

    command = compose_service("worker")["command"]
    metrics = command.index("--metrics-port") + 1
    command = [*command[:metrics], str(free_port()), *command[metrics + 1 :]]
    health = free_port()
    env = {
        **kafka.env_of("worker"),
        "VIGIL_REDIS__URL": f"rediss://localhost:{redis_port}/0",  # compose's rediss://redis:6379/0
        "VIGIL_REDIS__SSL_CAFILE": str(files["tls_ca"]),  # compose's tls_ca, the same CA as Kafka's
        "VIGIL_HEALTH_PORT": str(health),
    }
    assert env["VIGIL_REDIS__SSL_CAFILE"] == env["VIGIL_KAFKA__SSL_CAFILE"]
    log = tmp_path / "compose-worker.log"
    with log.open("ab") as out:
        worker = subprocess.Popen(  # noqa: S603 - compose's own command
            [sys.executable, "-m", "vigil.cli", *command[1:]], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    ingest = KafkaProducer(**_client(kafka, "vigil-ingest", kafka.password("kafka_ingest_password")))
    pager = KafkaConsumer(
        group_id=f"vigil-subscriber-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        **_client(kafka, "vigil-subscriber", pager_pw),
    )
    pager.subscribe([topics.SCORES])
    seen: list[bytes] = []

    def scored(patient: str) -> bool:
        """An EHR integration's event of ``patient``, scored and read by the pager."""
        event = PatientEvent(
            patient_id=patient,
            observed_at=datetime.now(UTC) - timedelta(minutes=2),
            kind="vital",
            code="HR",
            value=131.0,
            unit="/min",
            source="test",
        )
        ingest.send(topics.EVENTS_RAW, key=patient.encode(), value=event.model_dump_json().encode()).get(timeout=60)

        def pager_read_it() -> bool:
            seen.extend(r.key for records in pager.poll(timeout_ms=1000).values() for r in records)
            return patient.encode() in seen or worker.poll() is not None

        return wait_for(pager_read_it, 180) and worker.poll() is None

    try:
        assert scored(f"compose-{uuid.uuid4().hex[:8]}"), log.read_text()[-4000:]
        # one of the three Kafka nodes down: its partitions' leaders move, and writes still reach two
        # replicas (min.insync.replicas 2): events are taken, scored and read as before
        kafka.stop(kafka.nodes[2])
        assert scored(f"compose-{uuid.uuid4().hex[:8]}"), log.read_text()[-4000:]
        check = compose_service("worker")["healthcheck"]["test"]
        assert check[:3] == ["CMD", "python", "-c"] and "127.0.0.1:8081/readyz" in check[3]
        probe = [sys.executable, "-c", check[3].replace("127.0.0.1:8081", f"127.0.0.1:{health}")]
        assert wait_for(lambda: subprocess.run(probe, timeout=10).returncode == 0, 60), log.read_text()[-4000:]  # noqa: S603
        written = log.read_text()
        from vigil.cli.compose_secrets import SECRETS

        secrets = [kafka.password(name) for name in SECRETS]  # compose-secrets' passwords, keys and tokens
        assert redis_password in secrets and len(secrets) == 8
        assert not any(secret in written for secret in secrets)
        assert not any(secret.encode() in Path(f"/proc/{worker.pid}/environ").read_bytes() for secret in secrets)
        web_over_https(env, files, tmp_path)
    finally:
        pager.close()
        ingest.close()
        worker.terminate()
        worker.wait(30)


def web_over_https(worker_env: dict[str, str], files: dict[str, Path], tmp_path: Path) -> None:
    """compose's ``web`` service beside the worker: its command and environment, the certificate
    `vigil stack compose-tls` wrote for it; the sign-in page over HTTPS (HSTS, Secure cookies) and
    compose's healthcheck (HTTPS /readyz checked against the compose CA)."""
    import ssl
    import urllib.request

    users = tmp_path / "users.json"
    users.write_text("[]")
    spec = compose_service("web")
    assert (
        spec["environment"]["VIGIL_WEB__TLS_CERT"]
        == spec["environment"]["VIGIL_WEB__TLS_KEY"]
        == "/run/secrets/web_pem"
    )
    env = {
        **worker_env,
        # the certificate, POST /fhir's token and the session secret: compose's secrets, as files here
        **{k: v for k, v in mounted(spec["environment"], files).items() if k.startswith(("VIGIL_WEB__", "VIGIL_API"))},
        "VIGIL_USERS_FILE": str(users),  # compose's deploy/users folder mount
    }
    assert env["VIGIL_WEB__TLS_CERT"] == str(files["web_pem"]) and env["VIGIL_API_TOKEN_FILE"] == str(
        files["api_token"]
    )
    command = spec["command"]
    port = free_port()
    command = [*command[: command.index("--port") + 1], str(port)]
    log = tmp_path / "compose-web.log"
    with log.open("ab") as out:
        web = subprocess.Popen(  # noqa: S603 - compose's own command
            [sys.executable, "-m", "vigil.cli", *command[1:]], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    ca = ssl.create_default_context(cafile=str(files["tls_ca"]))

    def signin_page() -> bool:
        try:
            with urllib.request.urlopen(f"https://localhost:{port}/login", timeout=5, context=ca) as answer:
                return answer.status == 200 and "max-age" in answer.headers["Strict-Transport-Security"]
        except OSError:
            return web.poll() is not None

    try:
        assert wait_for(signin_page, 90) and web.poll() is None, log.read_text()[-3000:]
        check = spec["healthcheck"]["test"]
        assert check[:3] == ["CMD", "python", "-c"]
        probe = (
            check[3].replace("localhost:8000", f"localhost:{port}").replace("/run/secrets/tls_ca", str(files["tls_ca"]))
        )
        assert wait_for(lambda: subprocess.run([sys.executable, "-c", probe], timeout=10).returncode == 0, 90), (  # noqa: S603
            log.read_text()[-3000:]
        )
        with pytest.raises(OSError):  # plain HTTP is not served
            urllib.request.urlopen(f"http://localhost:{port}/login", timeout=5)  # noqa: S310
    finally:
        web.terminate()
        web.wait(30)
