"""docker-compose.yml describes production: Kafka (KRaft, SASL_SSL with ACLs), Redis, Kafka's roles and the
topics made once, two workers, the web app, the MLLP listener; every VIGIL_ variable it sets is a real setting
(no Docker engine is needed to check that; tests/integration/test_image.py runs its topics and worker commands
as the image would, test_compose_kafka.py its Kafka and kafka-access service, test_compose_redis.py its Redis)."""

import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import pom_kafka_version
from vigil.cli.compose_secrets import REDIS_UID
from vigil.cli.compose_tls import SERVERS as TLS_SERVERS
from vigil.infra.settings import Settings

COMPOSE = Path(__file__).parents[3] / "docker-compose.yml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_services_and_shape() -> None:
    services = _compose()["services"]
    assert {"kafka-1", "kafka-2", "kafka-3", "redis", "worker", "web", "mllp"} <= set(services)
    assert services["mllp"]["command"][:2] == ["vigil", "mllp"]
    # KRaft, three nodes started by Vigil's script (the image's own start cannot create SCRAM users),
    # each its own volume, one cluster: every node a voter, one cluster id
    kafka = [services[f"kafka-{i}"] for i in (1, 2, 3)]
    assert all(k["entrypoint"] == ["/bin/sh", "/etc/vigil/kafka-start.sh"] for k in kafka)
    assert all("./deploy/kafka-start.sh:/etc/vigil/kafka-start.sh:ro" in k["volumes"] for k in kafka)
    assert len({k["volumes"][0] for k in kafka}) == 3
    assert [k["environment"]["KAFKA_NODE_ID"] for k in kafka] == [1, 2, 3]
    assert {k["environment"]["KAFKA_CONTROLLER_VOTERS"] for k in kafka} == {
        "1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"
    }
    assert len({k["environment"]["KAFKA_CLUSTER_ID"] for k in kafka}) == 1
    assert [k["environment"]["KAFKA_ADVERTISED_HOST"] for k in kafka] == ["kafka-1", "kafka-2", "kafka-3"]
    assert all(
        services["kafka-access"]["depends_on"][f"kafka-{i}"] == {"condition": "service_healthy"} for i in (1, 2, 3)
    )
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


def test_every_long_running_service_comes_back_after_a_crash_or_a_reboot() -> None:
    """Redis and the dashboard had no restart policy: after the engine restarted, or Redis was killed
    for memory, it stayed down and the workers (not ready, never restarted for a Redis outage) scored
    nothing. The one-shot services (ACLs, topics) run once and are done."""
    services = _compose()["services"]
    once = {"kafka-access", "topics"}
    for name, service in services.items():
        if name in once:
            assert "restart" not in service, name
        else:
            assert service.get("restart") == "unless-stopped", name


def test_compose_runs_the_kafka_the_tests_run() -> None:
    """Every Kafka node's image is the version infra/kafka/pom.xml pins: the embedded stack and
    test_compose_kafka.py run those jars, so another tag would ship a Kafka no test started."""
    services = _compose()["services"]
    assert {services[f"kafka-{i}"]["image"] for i in (1, 2, 3)} == {f"apache/kafka:{pom_kafka_version()}"}


def test_compose_runs_the_redis_the_tests_run() -> None:
    """Compose builds its Redis from Debian bookworm's redis-server, the package `make system-deps`
    installs and the tests run (test_compose_redis.py runs compose's command on it); its user is the
    uid compose's Redis secrets are written for. An image tag (redis:7.4 until 6 December) would ship
    a Redis no test started."""
    redis = _compose()["services"]["redis"]
    assert "image" not in redis and redis["build"] == "deploy/redis"
    dockerfile = (COMPOSE.parent / "deploy" / "redis" / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)$", dockerfile, re.MULTILINE) == ["debian:bookworm-slim"]
    assert re.search(r"apt-get install -y --no-install-recommends redis-server\b", dockerfile)
    system_deps = (COMPOSE.parent / "Makefile").read_text().split("\nsystem-deps:", 1)[1].split("\n\n", 1)[0]
    assert "apt-get install" in system_deps and " redis-server" in system_deps
    uid = re.search(r"useradd .*--uid (\d+) ", dockerfile)
    assert uid is not None and re.search(r"^USER redis$", dockerfile, re.MULTILINE)
    assert uid.group(1) == REDIS_UID == str(TLS_SERVERS["redis"][1])
    os_release = Path("/etc/os-release")
    if os_release.exists() and "\nID=debian\n" in f"\n{os_release.read_text()}":
        # the tests' redis-server is the same Debian release's package
        assert "VERSION_CODENAME=bookworm" in os_release.read_text().splitlines()


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


def _compose_secrets(folder: Path) -> dict[str, Path]:
    """compose's secrets under deploy/secrets as `vigil stack compose-secrets` writes them into ``folder``."""
    import typer
    from typer.testing import CliRunner

    from vigil.cli.stack import register

    app = typer.Typer()
    register(app)
    done = CliRunner().invoke(app, ["stack", "compose-secrets", "--out", str(folder)])
    assert done.exit_code == 0, done.output
    return {
        name: folder / Path(spec["file"]).name
        for name, spec in _compose()["secrets"].items()
        if spec["file"].startswith("./deploy/secrets/")
    }


@pytest.mark.parametrize("service", ["kafka-access", "topics", "worker", "web", "mllp"])
def test_vigil_environment_is_valid_settings(service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from vigil.cli.access import PASSWORD_ENVS

    files = _compose_secrets(tmp_path)
    spec = _compose()["services"][service]
    for key, value in spec["environment"].items():
        if str(value).startswith("/run/secrets/"):
            name = str(value).removeprefix("/run/secrets/")
            assert name in spec["secrets"], f"{service}: {key} names {name}, which compose does not mount there"
            value = str(files.get(name, value))
        if key.startswith("VIGIL_") and key.removesuffix("_FILE") not in PASSWORD_ENVS.values():  # `stack access`'s
            monkeypatch.setenv(key, str(value))
            _assert_is_a_setting(key)
    settings = Settings()
    assert settings.kafka.bootstrap == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert settings.kafka.replication_factor == 3  # min.insync.replicas 2 (infra.stack.topics): one node may be down
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.ssl_cafile == "/run/secrets/tls_ca"
    assert settings.kafka.sasl_username == ("vigil-broker" if service == "kafka-access" else "vigil")
    kafka_password = files["kafka_admin_password" if service == "kafka-access" else "kafka_password"].read_text()
    assert (
        settings.kafka.sasl_password is not None and settings.kafka.sasl_password.get_secret_value() == kafka_password
    )
    assert settings.redis.url == "rediss://redis:6379/0"  # TLS only: compose's Redis has no plain port
    assert settings.redis.ssl_cafile == "/run/secrets/tls_ca"
    assert settings.redis.password is not None
    assert settings.redis.password.get_secret_value() == files["redis_password"].read_text()
    assert settings.log_hash_key.get_secret_value() == files["log_hash_key"].read_text()
    if service == "web":  # HTTPS only: the sign-in, the patients, POST /fhir's token
        assert settings.web.tls_cert == settings.web.tls_key == Path("/run/secrets/web_pem")
        web = _compose()["services"]["web"]
        assert "web_pem" in web["secrets"] and "https://localhost:8000/readyz" in web["healthcheck"]["test"][3]
        assert settings.api_token is not None and settings.web.session_secret is not None


def test_no_secret_is_in_a_containers_environment() -> None:
    """`docker inspect` shows a container's environment, and every process it starts inherits it:
    each password, key and token is a file compose mounts, named by a *_FILE variable."""
    services = _compose()["services"]
    secret_like = re.compile(r"PASSWORD|SECRET|TOKEN|HASH_KEY")
    named = 0
    for service, spec in services.items():
        for key, value in (spec.get("environment") or {}).items():
            assert "${" not in str(value), f"{service}: {key} is interpolated from the operator's environment"
            if secret_like.search(key):
                assert key.endswith("_FILE"), f"{service}: {key} holds a secret itself"
                assert str(value).removeprefix("/run/secrets/") in spec["secrets"], f"{service}: {key}"
                named += 1
    assert (
        named == 23
    )  # kafka-1..3 1 each, kafka-access 6, topics 3, worker 3, web 5, mllp 3 (a guard against a lost key)


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
        f"user vigil on >{'x' * 32} ~vigil:* resetchannels +@all -@dangerous -@scripting",
    ]
    assert out.stat().st_mode & 0o777 == 0o600
    assert _compose()["services"]["redis"]["secrets"] == ["redis_users", "redis_pem", "tls_ca"]


def test_the_dashboard_reads_its_users_from_a_folder_mount() -> None:
    """`vigil users add/remove` renames a new file over the users file. Mounted as a file (a file
    secret, without swarm), the container kept reading the old, deleted one: a removed clinician could
    sign in until `web` was recreated. The folder is mounted (read-only) and the setting points into it."""
    compose = _compose()
    web = compose["services"]["web"]
    users_file = Path(web["environment"]["VIGIL_USERS_FILE"])
    folders = {mount.split(":")[1]: mount.split(":") for mount in web.get("volumes", [])}
    source, _target, *options = folders[str(users_file.parent)]
    assert source == "./deploy/users" and options == ["ro"]
    assert "vigil_users" not in compose["secrets"] and "vigil_users" not in web["secrets"]
    for service in compose["services"].values():  # no file of the users' folder mounted on its own
        assert not any(v.startswith("./deploy/users/") for v in service.get("volumes", []))


def test_redis_refuses_writes_before_the_kernel_kills_it() -> None:
    """`noeviction` without `--maxmemory` does nothing: Redis grew until the kernel killed it. Under a
    limit it refuses writes (the workers retry them, not ready) and keeps serving reads. The limit
    holds far more patients than a site has within the state's TTL
    (docs/performance.md: at most 3,840 B per patient)."""
    command = _compose()["services"]["redis"]["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"
    limit = re.fullmatch(r"(\d+)(mb|gb)", command[command.index("--maxmemory") + 1])
    assert limit is not None
    default_b = int(limit.group(1)) * 1024 ** {"mb": 2, "gb": 3}[limit.group(2)]
    assert 100_000 <= default_b // 3_840 <= 1_000_000  # patients' state at the measured maximum
