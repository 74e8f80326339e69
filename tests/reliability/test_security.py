"""Secure embedded stack: Kafka SASL_SSL (SCRAM-SHA-512, local CA) and Redis with an ACL user.
Authenticated workers score end to end; unauthenticated clients are refused; secrets are 0600."""

from __future__ import annotations

import logging
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


def test_unauthenticated_kafka_clients_are_refused(secure_settings, secure_stack, results_dir, caplog) -> None:
    settings, info = secure_settings, secure_stack
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


def test_worker_scores_over_sasl_ssl(secure_settings, secure_stack, tmp_path) -> None:
    from vigil.infra.connect import kafka_producer
    from vigil.infra.readback import TopicReader
    from vigil.infra.workers import spawn_worker, stop_worker
    from vigil.schemas.events import PatientEvent

    settings = secure_settings
    reader = TopicReader(settings).start()
    log = tmp_path / "secure-worker.log"
    worker = spawn_worker(settings, log)
    producer = kafka_producer(settings)
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
