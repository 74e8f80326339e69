"""infra.connect: one resolution of endpoints and credentials for every client."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr

from vigil.infra.connect import faust_broker, kafka_endpoint, kafka_options, redis_endpoint
from vigil.infra.secrets import (
    KAFKA_CLIENT_PASSWORD,
    KAFKA_INGEST_PASSWORD,
    KAFKA_INGEST_USER,
    REDIS_ADMIN_PASSWORD,
    REDIS_PASSWORD,
    DefaultSecretError,
    ensure_secret,
    require_real_log_key,
)
from vigil.infra.settings import KafkaSettings, RedisSettings, Settings


def embedded(home: Path, **kafka: object) -> Settings:
    return Settings(home=home, kafka=KafkaSettings(embedded_port=30000, embedded_controller_port=30001, **kafka))


def test_embedded_cluster_bootstrap_lists_every_node_and_replicates(tmp_path: Path) -> None:
    one, three = kafka_endpoint(embedded(tmp_path)), kafka_endpoint(embedded(tmp_path, brokers=3))
    assert one.bootstrap == "127.0.0.1:30000" and (one.replication_factor, one.min_insync_replicas) == (1, 1)
    assert three.addresses == ["127.0.0.1:30000", "127.0.0.1:30002", "127.0.0.1:30004"]
    assert (three.replication_factor, three.min_insync_replicas) == (3, 2)
    external = kafka_endpoint(Settings(kafka=KafkaSettings(bootstrap="k1:9092,k2:9092")))
    assert not external.embedded and (external.replication_factor, external.min_insync_replicas) == (3, 2)


def test_secure_embedded_clients_read_the_stack_secrets(tmp_path: Path) -> None:
    password = ensure_secret(tmp_path, KAFKA_CLIENT_PASSWORD)
    options = kafka_options(embedded(tmp_path, security_protocol="SASL_SSL"))
    assert options["security_protocol"] == "SASL_SSL" and options["ssl_check_hostname"] is True
    assert options["ssl_cafile"] == str(tmp_path / "tls" / "ca.pem")
    assert options["sasl_mechanism"] == "SCRAM-SHA-512" and options["sasl_plain_username"] == "vigil"
    assert options["sasl_plain_password"] == password.get_secret_value()
    assert kafka_options(embedded(tmp_path)) == {"bootstrap_servers": ["127.0.0.1:30000"]}


def test_a_role_user_of_the_embedded_stack_gets_its_own_password(tmp_path: Path) -> None:
    service = ensure_secret(tmp_path, KAFKA_CLIENT_PASSWORD)
    ingest = ensure_secret(tmp_path, KAFKA_INGEST_PASSWORD)
    as_ingest = kafka_options(embedded(tmp_path, security_protocol="SASL_SSL", sasl_username=KAFKA_INGEST_USER))
    assert as_ingest["sasl_plain_username"] == "vigil-ingest"
    assert as_ingest["sasl_plain_password"] == ingest.get_secret_value() != service.get_secret_value()
    # a user the stack did not create brings its own password: never the service's
    other = kafka_options(embedded(tmp_path, security_protocol="SASL_SSL", sasl_username="vigil-broker"))
    assert other["sasl_plain_password"] is None


def test_external_endpoints_never_get_the_embedded_secrets(tmp_path: Path) -> None:
    ensure_secret(tmp_path, KAFKA_CLIENT_PASSWORD)
    ensure_secret(tmp_path, REDIS_PASSWORD)
    settings = Settings(
        home=tmp_path,
        kafka=KafkaSettings(bootstrap="kafka:9093", security_protocol="SASL_SSL", sasl_username="svc"),
        redis=RedisSettings(url="redis://redis:6379/0"),
    )
    options = kafka_options(settings)
    assert options["sasl_plain_password"] is None and "ssl_cafile" not in options
    assert redis_endpoint(settings).password is None and redis_endpoint(settings).username is None


def test_embedded_redis_users_and_explicit_settings_win(tmp_path: Path) -> None:
    worker, admin = ensure_secret(tmp_path, REDIS_PASSWORD), ensure_secret(tmp_path, REDIS_ADMIN_PASSWORD)
    settings = Settings(home=tmp_path, redis=RedisSettings(embedded_port=30009))
    assert redis_endpoint(settings).url == "redis://127.0.0.1:30009/0"
    assert (redis_endpoint(settings).username, redis_endpoint(settings).password) == ("vigil", worker)
    assert (redis_endpoint(settings, admin=True).username, redis_endpoint(settings, admin=True).password) == (
        None,
        admin,
    )
    explicit = Settings(home=tmp_path, redis=RedisSettings(username="ops", password=SecretStr("given")))
    assert redis_endpoint(explicit).username == "ops"
    assert redis_endpoint(explicit).password.get_secret_value() == "given"


def test_a_rediss_server_is_checked_against_the_configured_ca(tmp_path: Path) -> None:
    """VIGIL_REDIS__SSL_CAFILE reaches the sync and asyncio clients of a rediss:// URL (compose's Redis,
    whose certificate a private CA signed); a plain redis:// URL gets no TLS option at all."""
    from vigil.infra.connect import redis_async_client, redis_client

    ca = str(tmp_path / "ca.pem")
    tls = Settings(home=tmp_path, redis=RedisSettings(url="rediss://redis:6379/0", ssl_cafile=ca))
    for client in (redis_client(tls), redis_async_client(tls)):
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["ssl_ca_certs"] == ca and kwargs.get("ssl_cert_reqs", "required") == "required"
    plain = Settings(home=tmp_path, redis=RedisSettings(url="redis://redis:6379/0", ssl_cafile=ca))
    assert "ssl_ca_certs" not in redis_client(plain).connection_pool.connection_kwargs
    # another address (`vigil alerts ls --redis`): its own scheme decides
    assert redis_client(plain, url="rediss://other:6379/0").connection_pool.connection_kwargs["ssl_ca_certs"] == ca
    assert "ssl_ca_certs" not in redis_client(tls, url="redis://other:6379/0").connection_pool.connection_kwargs


def test_faust_gets_the_same_broker_list_and_credentials(tmp_path: Path) -> None:
    (tmp_path / "tls").mkdir()
    plain = faust_broker(embedded(tmp_path, brokers=3))
    assert plain == {"broker": "kafka://127.0.0.1:30000,127.0.0.1:30002,127.0.0.1:30004", "broker_credentials": None}
    ensure_secret(tmp_path, KAFKA_CLIENT_PASSWORD)
    # a CA file is needed to build the TLS context: the system bundle stands in for the local CA
    ca = ssl.get_default_verify_paths().cafile or ssl.get_default_verify_paths().openssl_cafile
    if not ca or not Path(ca).exists():
        pytest.skip("no CA bundle on this machine")
    secure = Settings(
        home=tmp_path,
        kafka=KafkaSettings(embedded_port=30000, security_protocol="SASL_SSL", ssl_cafile=ca),
    )
    credentials = faust_broker(secure)["broker_credentials"]
    assert credentials.username == "vigil" and credentials.mechanism.value == "SCRAM-SHA-512"
    assert credentials.ssl_context.check_hostname is True


def test_children_resolve_the_same_endpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.infra.workers import worker_env

    parent = Settings(
        home=tmp_path,
        kafka=KafkaSettings(
            embedded_port=30000, embedded_controller_port=30001, brokers=3, security_protocol="SASL_SSL"
        ),
        redis=RedisSettings(embedded_port=30009, ttl_s=60),
        bundle_dir=tmp_path / "bundle",
    )
    monkeypatch.setenv("VIGIL_KAFKA__BOOTSTRAP", "stale:9092")  # a parent shell's value must not leak
    env = worker_env(parent)
    assert not any("PASSWORD" in k for k in env)
    for key in [k for k in os.environ if k.startswith("VIGIL_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith("VIGIL_"):
            monkeypatch.setenv(key, value)
    child = Settings()
    assert kafka_endpoint(child) == kafka_endpoint(parent)
    assert redis_endpoint(child) == redis_endpoint(parent) and child.redis.ttl_s == 60
    assert child.bundle_dir == parent.bundle_dir  # `vigil replay`'s worker serves what it compares with


def test_default_log_key_is_refused_only_against_an_external_broker() -> None:
    require_real_log_key(Settings(), "worker")  # embedded stack: the demo's default is fine
    require_real_log_key(Settings(kafka=KafkaSettings(bootstrap="k:9092"), log_hash_key=SecretStr("s3cret")), "worker")
    with pytest.raises(DefaultSecretError, match="VIGIL_LOG_HASH_KEY") as refused:
        require_real_log_key(Settings(kafka=KafkaSettings(bootstrap="k:9092")), "serve")
    assert "\n" not in str(refused.value)
