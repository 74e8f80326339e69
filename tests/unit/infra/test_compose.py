"""docker-compose.yml describes production: Kafka (KRaft, SASL_SSL with ACLs), Redis, Kafka's roles and the
topics made once, two workers, the web app, the MLLP listener; every VIGIL_ variable it sets is a real setting
(no Docker engine is needed to check that; tests/integration/test_image.py runs its topics and worker commands
as the image would, test_compose_kafka.py its Kafka and kafka-access service, test_compose_redis.py its Redis)."""

import re
from pathlib import Path

import pytest
import yaml

from vigil.infra.settings import Settings

COMPOSE = Path(__file__).parents[3] / "docker-compose.yml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_services_and_shape() -> None:
    services = _compose()["services"]
    assert {"kafka", "redis", "worker", "web", "mllp"} <= set(services)
    assert services["mllp"]["command"][:2] == ["vigil", "mllp"]
    # KRaft, started by Vigil's script (the image's own start cannot create SCRAM users)
    assert services["kafka"]["entrypoint"] == ["/bin/sh", "/etc/vigil/kafka-start.sh"]
    assert "./deploy/kafka-start.sh:/etc/vigil/kafka-start.sh:ro" in services["kafka"]["volumes"]
    assert "process.roles=broker,controller" in (COMPOSE.parent / "deploy" / "kafka-start.sh").read_text()
    assert services["worker"]["deploy"]["replicas"] == 2
    assert services["worker"]["command"][:2] == ["vigil", "worker"]
    # the roles' users, ACLs and quotas, then the topics, as specified, before a worker or the MLLP listener starts
    assert services["kafka-access"]["command"] == ["vigil", "stack", "access", "--apply"]
    assert services["topics"]["depends_on"]["kafka-access"] == {"condition": "service_completed_successfully"}
    assert services["topics"]["command"] == ["vigil", "stack", "topics", "--apply"]
    for service in ("worker", "mllp"):
        assert services[service]["depends_on"]["topics"] == {"condition": "service_completed_successfully"}
    # Vigil's containers: a read-only root, a tmpfs temp dir (tests/integration/test_image.py runs them so)
    vigil = [name for name, spec in services.items() if spec.get("command", [""])[0] == "vigil"]
    assert sorted(vigil) == ["kafka-access", "mllp", "topics", "web", "worker"]
    assert all(services[s]["read_only"] is True and services[s]["tmpfs"] == ["/tmp"] for s in vigil)
    # each checks Kafka's and Redis' certificates against compose's CA
    assert all("tls_ca" in services[s]["secrets"] for s in vigil)


def _assert_is_a_setting(env_name: str) -> None:
    """VIGIL_KAFKA__BOOTSTRAP -> Settings.kafka.bootstrap must exist (pydantic-settings would
    silently ignore a misspelt top-level variable)."""
    model: type = Settings
    for part in env_name.removeprefix("VIGIL_").lower().split("__"):
        assert part in model.model_fields, f"{env_name}: no setting {part!r}"
        model = model.model_fields[part].annotation  # type: ignore[assignment]


def test_a_misspelt_variable_is_caught() -> None:
    with pytest.raises(AssertionError):
        _assert_is_a_setting("VIGIL_KAFKA_BOOTSTRAP")


@pytest.mark.parametrize("service", ["kafka-access", "topics", "worker", "web", "mllp"])
def test_vigil_environment_is_valid_settings(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.cli.access import PASSWORD_ENVS

    env = _compose()["services"][service]["environment"]
    for key, value in env.items():
        if key.startswith("VIGIL_") and key not in PASSWORD_ENVS.values():  # read by `vigil stack access`
            monkeypatch.setenv(key, re.sub(r"\$\{[^}]*\}", "from-secret", str(value)))
            _assert_is_a_setting(key)
    settings = Settings()
    assert settings.kafka.bootstrap == "kafka:9092"
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.ssl_cafile == "/run/secrets/tls_ca"
    assert settings.kafka.sasl_username == ("vigil-broker" if service == "kafka-access" else "vigil")
    assert settings.redis.url == "rediss://redis:6379/0"  # TLS only: compose's Redis has no plain port
    assert settings.redis.ssl_cafile == "/run/secrets/tls_ca"
    if service == "web":  # HTTPS only: the sign-in, the patients, POST /fhir's token
        assert settings.web.tls_cert == settings.web.tls_key == Path("/run/secrets/web_pem")
        web = _compose()["services"]["web"]
        assert "web_pem" in web["secrets"] and "https://localhost:8000/readyz" in web["healthcheck"]["test"][3]


def test_the_redis_users_file_needs_a_password_compose_can_give_and_redis_can_read(tmp_path, monkeypatch) -> None:
    """`vigil stack redis-users`: one line when VIGIL_REDIS_PASSWORD is missing, short or holds what
    Redis' config parser would read (a space, a quote); the file is the owner's alone."""
    import typer
    from typer.testing import CliRunner

    from vigil.cli.stack import register
    from vigil.schemas.errors import UserError

    app = typer.Typer()
    register(app)
    out = tmp_path / "redis-users.conf"
    for bad in ("", "short", "a" * 20 + " b", 'a"' * 10):
        monkeypatch.setenv("VIGIL_REDIS_PASSWORD", bad)
        refused = CliRunner().invoke(app, ["stack", "redis-users", "--out", str(out)])
        assert isinstance(refused.exception, UserError) and "VIGIL_REDIS_PASSWORD" in str(refused.exception)
    assert not out.exists()
    monkeypatch.setenv("VIGIL_REDIS_PASSWORD", "x" * 32)
    done = CliRunner().invoke(app, ["stack", "redis-users", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert out.read_text().splitlines() == [
        "user default on nopass -@all +ping",
        f"user vigil on >{'x' * 32} ~vigil:* &* +@all -@dangerous -@scripting",
    ]
    assert out.stat().st_mode & 0o777 == 0o600
    assert _compose()["services"]["redis"]["secrets"] == ["redis_users", "redis_pem", "tls_ca"]
