"""Secure embedded stack: Kafka SASL_SSL (SCRAM-SHA-512, local CA) and Redis with an ACL user.
Authenticated workers score end to end; unauthenticated clients are refused; secrets are 0600."""

from __future__ import annotations

import logging
import os
import stat
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import link_cached_kafka_jars, wait_for
from tests.reliability.helpers import report
from vigil.schemas import topics

pytestmark = pytest.mark.reliability

SECURE_KAFKA_PORT = int(os.environ.get("VIGIL_TEST_SECURE_KAFKA_PORT", "29192"))
SECURE_REDIS_PORT = int(os.environ.get("VIGIL_TEST_SECURE_REDIS_PORT", "26479"))


@pytest.fixture(scope="module")
def secure_stack() -> Iterator[tuple[object, object]]:
    from vigil.infra.settings import KafkaSettings, RedisSettings, Settings
    from vigil.infra.stack import stack_down, stack_up

    with tempfile.TemporaryDirectory(prefix="vigil-secure-") as tmp:
        home = Path(tmp)
        link_cached_kafka_jars(home)
        settings = Settings(
            home=home,
            kafka=KafkaSettings(
                embedded_port=SECURE_KAFKA_PORT,
                embedded_controller_port=SECURE_KAFKA_PORT + 1,
                security_protocol="SASL_SSL",
                sasl_mechanism="SCRAM-SHA-512",
            ),
            redis=RedisSettings(embedded_port=SECURE_REDIS_PORT),
        )
        info = stack_up(settings)
        try:
            yield settings, info
        finally:
            stack_down(settings)


def _client_options(settings) -> dict:
    from vigil.infra.tls import kafka_client_options, with_stack_credentials

    return kafka_client_options(with_stack_credentials(settings))


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


def test_secrets_are_private_and_never_in_logs(secure_stack) -> None:
    settings, info = secure_stack
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


def test_unauthenticated_kafka_clients_are_refused(secure_stack, results_dir, caplog) -> None:
    settings, info = secure_stack
    good = _client_options(settings)
    results = {"authenticated": _metadata_ok(info.bootstrap, **good), "plaintext": _metadata_ok(info.bootstrap)}
    results["tls_without_sasl"] = _metadata_ok(info.bootstrap, security_protocol="SSL", ssl_cafile=good["ssl_cafile"])
    # the client's own log says why: the broker rejected the SCRAM exchange
    with caplog.at_level(logging.DEBUG, logger="kafka"):
        results["wrong_password"] = _metadata_ok(info.bootstrap, **{**good, "sasl_plain_password": "not-it"})
        results["unknown_user"] = _metadata_ok(info.bootstrap, **{**good, "sasl_plain_username": "mallory"})
    auth_failures = [r.getMessage() for r in caplog.records if "authentication" in r.getMessage().lower()]
    results["client_logged_authentication_failures"] = len(auth_failures)
    report(results_dir, "security_kafka", results)
    assert results["authenticated"] == "ok"
    assert all(v != "ok" for k, v in results.items() if k != "authenticated"), results
    assert auth_failures, "wrong credentials must fail in SASL authentication, not elsewhere"
    secrets = [p.read_text().strip() for p in (settings.home / "secrets").iterdir()]
    assert not any(s in m for s in secrets for m in auth_failures)


def test_redis_requires_password_and_acl_limits_the_worker_user(secure_stack, results_dir) -> None:
    import redis

    from vigil.infra.tls import with_stack_credentials

    settings, info = secure_stack
    creds = with_stack_credentials(settings).redis
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


def test_worker_scores_over_sasl_ssl(secure_stack, tmp_path) -> None:
    from kafka import KafkaProducer

    from vigil.infra.readback import TopicReader
    from vigil.infra.workers import spawn_worker, stop_worker
    from vigil.schemas.events import PatientEvent

    settings, info = secure_stack
    options = _client_options(settings)
    reader = TopicReader(info.bootstrap, **options).start()
    log = tmp_path / "secure-worker.log"
    worker = spawn_worker(info, log)
    producer = KafkaProducer(bootstrap_servers=info.bootstrap, acks="all", **options)
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
        secrets = [p.read_text().strip() for p in (settings.home / "secrets").iterdir()]
        assert not any(s in log.read_text() for s in secrets), "the worker logged a secret"
    finally:
        producer.close()
        reader.stop()
        stop_worker(worker)
