"""What docker-compose's Kafka and Redis are given: `vigil stack compose-tls` (a CA, and each server's
certificate for compose's host name) and `vigil stack access` (the role users' passwords from the environment, checked
before anything reaches a broker, a JAAS line or StorageTool's --add-scram)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vigil.cli.stack import register
from vigil.schemas.errors import UserError


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_compose_tls_signs_each_servers_names_and_keeps_its_key_private(tmp_path: Path) -> None:
    from cryptography import x509

    args = ["stack", "compose-tls", "--out", str(tmp_path), "--kafka-host", "kafka.example.org", "--json"]
    done = CliRunner().invoke(_app(), args)
    assert done.exit_code == 0, done.output
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    wanted = {
        "kafka.pem": ["kafka", "kafka-1", "kafka-2", "kafka-3", "localhost", "kafka.example.org"],
        "redis.pem": ["redis", "localhost"],
        "web.pem": ["web", "localhost"],
    }
    for file, names in wanted.items():
        chain = x509.load_pem_x509_certificates((tmp_path / file).read_bytes())
        assert chain[1] == ca
        server = chain[0]
        server.verify_directly_issued_by(ca)
        san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == names  # compose's name, the healthcheck's, the operator's
        assert (tmp_path / file).stat().st_mode & 0o777 == 0o600
        assert b"PRIVATE KEY" in (tmp_path / file).read_bytes()
    assert (tmp_path / "ca.pem").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.pem", "kafka.pem", "redis.pem", "web.pem"]  # no CA key
    assert all(f"sudo chown {uid}" in done.output for uid in (1000, 999, 10001))


def test_compose_tls_replaces_all_four_files_or_none(tmp_path: Path) -> None:
    """kafka.pem, redis.pem and web.pem were replaced one by one and ca.pem written last: a failure on
    ca.pem (here a folder, as Docker makes a missing bind-mount source) left new server certificates
    signed by a CA no client trusts, and the key of one beside it in kafka.pem.tmp."""
    from vigil.cli.errors import explain

    argv = ["stack", "compose-tls", "--out", str(tmp_path)]
    assert CliRunner().invoke(_app(), argv).exit_code == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    (tmp_path / "ca.pem").unlink()
    (tmp_path / "ca.pem").mkdir()
    refused = CliRunner().invoke(_app(), argv)
    assert isinstance(refused.exception, IsADirectoryError)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == {
        k: v for k, v in before.items() if k != "ca.pem"
    }  # kafka.pem, redis.pem, web.pem unchanged, no .tmp left
    line, code = explain(refused.exception, argv)
    assert code == 2 and line.startswith(f"{tmp_path / 'ca.pem'} is a folder") and "remove that folder" in line
    (tmp_path / "ca.pem").rmdir()
    assert CliRunner().invoke(_app(), argv).exit_code == 0
    assert (tmp_path / "ca.pem").stat().st_mode & 0o777 == 0o644  # public, as before
    assert (tmp_path / "kafka.pem").read_bytes() != before["kafka.pem"]


def test_compose_tls_names_an_ip_address_as_one(tmp_path: Path) -> None:
    from cryptography import x509

    done = CliRunner().invoke(_app(), ["stack", "compose-tls", "--out", str(tmp_path), "--redis-host", "10.0.0.7"])
    assert done.exit_code == 0, done.output
    server = x509.load_pem_x509_certificates((tmp_path / "redis.pem").read_bytes())[0]
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]


def test_compose_tls_needs_a_folder(tmp_path: Path) -> None:
    refused = CliRunner().invoke(_app(), ["stack", "compose-tls", "--out", str(tmp_path / "missing")])
    assert isinstance(refused.exception, UserError) and "mkdir -p" in str(refused.exception)


@pytest.mark.parametrize(
    ("option", "host"), [("--web-host", "bad host!!"), ("--redis-host", "*.*.*"), ("--kafka-host", "-x")]
)
def test_compose_tls_refuses_a_name_no_client_could_reach(tmp_path: Path, option: str, host: str) -> None:
    refused = CliRunner().invoke(_app(), ["stack", "compose-tls", "--out", str(tmp_path), option, host])
    assert isinstance(refused.exception, UserError) and "neither a host name" in str(refused.exception)
    assert not list(tmp_path.iterdir())  # nothing written
    names = ["--web-host", "vigil.icu.example.org", "--redis-host", "*.icu.local", "--kafka-host", "::1"]
    assert CliRunner().invoke(_app(), ["stack", "compose-tls", "--out", str(tmp_path), *names]).exit_code == 0


@pytest.mark.parametrize(
    "bad",
    [
        "short",
        "a" * 20 + '"',  # would end the JAAS line's password
        "a" * 20 + ",password=x",  # would be read by --add-scram's parser
        "a" * 20 + "]",
        "a" * 20 + " b",
        "a" * 20 + "=",
        "a" * 20 + "\\",
    ],
)
def test_a_password_kafka_would_misread_is_refused_by_name(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from vigil.cli import preflight

    monkeypatch.setattr(preflight, "require_broker", lambda settings: pytest.fail("reached the broker"))
    monkeypatch.setenv("VIGIL_KAFKA_PASSWORD", "x" * 24)
    monkeypatch.setenv("VIGIL_KAFKA_INGEST_PASSWORD", bad)
    refused = CliRunner().invoke(_app(), ["stack", "access", "--apply"])
    assert isinstance(refused.exception, UserError)
    assert "VIGIL_KAFKA_INGEST_PASSWORD" in str(refused.exception) and "vigil-ingest" in str(refused.exception)
    assert bad not in str(refused.exception)


def test_the_users_are_those_with_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    for name in ("VIGIL_KAFKA_PASSWORD", "VIGIL_KAFKA_INGEST_PASSWORD", "VIGIL_KAFKA_SUBSCRIBER_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VIGIL_KAFKA_PASSWORD", "0123456789abcdef-_.~+/")
    monkeypatch.setenv("VIGIL_KAFKA_SUBSCRIBER_PASSWORD", "")  # compose's ${...:-}: no user
    listed = CliRunner().invoke(_app(), ["stack", "access", "--json"])
    assert listed.exit_code == 0, listed.output
    summary = json.loads(listed.output.strip().splitlines()[-1])
    assert summary["users"] == ["vigil"] and summary["applied"] is False
    assert summary["acls"] == 33 and summary["quotas"] == 2
    assert "0123456789abcdef" not in listed.output


def test_compose_secrets_writes_what_compose_mounts_once_each_owners_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    import yaml

    from vigil.cli.compose_secrets import SECRETS

    for secret in SECRETS.values():
        monkeypatch.delenv(secret.former, raising=False)
    compose = yaml.safe_load((Path(__file__).parents[3] / "docker-compose.yml").read_text())
    mounted = {
        name: Path(spec["file"]).name
        for name, spec in compose["secrets"].items()
        if spec["file"].startswith("./deploy/secrets/")
    }
    done = CliRunner().invoke(_app(), ["stack", "compose-secrets", "--out", str(tmp_path), "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.output.strip().splitlines()[-1])
    assert sorted(summary["written"]) == sorted(p.name for p in tmp_path.iterdir()) == sorted(mounted.values())
    assert set(summary["sources"].values()) == {"generated"}
    for name in SECRETS:
        value = (tmp_path / name).read_text()
        assert len(value) == 48 and int(value, 16) >= 0  # 48 hex digits, no line end
        assert value not in done.output
    assert len({(tmp_path / name).read_text() for name in SECRETS}) == len(SECRETS)  # each its own
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {name: 0o440 if name == "kafka_admin_password" else 0o600 for name in mounted.values()}
    redis_password = (tmp_path / "redis_password").read_text()
    assert f"user vigil on >{redis_password} " in (tmp_path / "redis-users.conf").read_text()
    assert "sudo chown 10001:1000" in done.output and "sudo chown 999" in done.output

    # a rerun keeps every file (the Kafka volume was formatted with the admin password, Redis'
    # state is keyed with the log key); a file deleted is written again, alone
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    (tmp_path / "api_token").unlink()
    again = CliRunner().invoke(_app(), ["stack", "compose-secrets", "--out", str(tmp_path), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output.strip().splitlines()[-1])["written"] == ["api_token"]
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert {k: v for k, v in after.items() if k != "api_token"} == {k: v for k, v in before.items() if k != "api_token"}
    assert after["api_token"] != before["api_token"]


def test_compose_secrets_takes_the_former_variables_and_refuses_one_a_server_would_misread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vigil.cli.compose_secrets import SECRETS

    for secret in SECRETS.values():
        monkeypatch.delenv(secret.former, raising=False)
    monkeypatch.setenv("VIGIL_KAFKA_ADMIN_PASSWORD", "a" * 20 + "=")  # '=' is not text to SCRAM's parser
    refused = CliRunner().invoke(_app(), ["stack", "compose-secrets", "--out", str(tmp_path)])
    assert isinstance(refused.exception, UserError) and "VIGIL_KAFKA_ADMIN_PASSWORD" in str(refused.exception)
    assert not (tmp_path / "kafka_admin_password").exists()
    monkeypatch.setenv("VIGIL_KAFKA_ADMIN_PASSWORD", "formatted-with-this-admin-password")
    monkeypatch.setenv("VIGIL_REDIS_PASSWORD", "redis-password-with=sign")  # '=' is text to Redis
    monkeypatch.setenv("VIGIL_LOG_HASH_KEY", "the key hashing every patient id")
    done = CliRunner().invoke(_app(), ["stack", "compose-secrets", "--out", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "kafka_admin_password").read_text() == "formatted-with-this-admin-password"
    assert (tmp_path / "redis_password").read_text() == "redis-password-with=sign"
    assert (tmp_path / "log_hash_key").read_text() == "the key hashing every patient id"
    refused = CliRunner().invoke(_app(), ["stack", "compose-secrets", "--out", str(tmp_path / "missing")])
    assert isinstance(refused.exception, UserError) and "mkdir -p" in str(refused.exception)


def test_access_reads_the_role_passwords_from_compose_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    for role in ("", "_INGEST", "_SUBSCRIBER"):
        monkeypatch.delenv(f"VIGIL_KAFKA{role}_PASSWORD", raising=False)
        (tmp_path / f"kafka{role}").write_text("0123456789abcdef-_.~+/" + role + "\n")
        monkeypatch.setenv(f"VIGIL_KAFKA{role}_PASSWORD_FILE", str(tmp_path / f"kafka{role}"))
    listed = CliRunner().invoke(_app(), ["stack", "access", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output.strip().splitlines()[-1])["users"] == ["vigil", "vigil-ingest", "vigil-subscriber"]
    (tmp_path / "kafka_INGEST").write_text("short\n")
    refused = CliRunner().invoke(_app(), ["stack", "access"])
    assert isinstance(refused.exception, UserError) and "VIGIL_KAFKA_INGEST_PASSWORD" in str(refused.exception)
