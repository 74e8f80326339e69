"""Rotating docker-compose's secrets the documented way (delete a file, run `vigil stack
compose-secrets` again): what a new value also needs written, and the one it must not be written for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from vigil.cli.compose_secrets import SECRETS
from vigil.cli.stack import register
from vigil.schemas.errors import UserError


def _run(out: Path) -> Result:
    app = typer.Typer()
    register(app)
    return CliRunner().invoke(app, ["stack", "compose-secrets", "--out", str(out), "--json"])


@pytest.fixture(autouse=True)
def _no_former_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for secret in SECRETS.values():
        monkeypatch.delenv(secret.former, raising=False)
        monkeypatch.delenv(secret.former + "_FILE", raising=False)


def _users_password(out: Path) -> str:
    (line,) = [x for x in (out / "redis-users.conf").read_text().splitlines() if x.startswith("user vigil on >")]
    return line.split(">", 1)[1].split()[0]


def test_a_new_redis_password_rewrites_the_redis_users_file(tmp_path: Path) -> None:
    """Else Redis keeps the old password while every container sends the new one: all locked out."""
    assert _run(tmp_path).exit_code == 0
    (tmp_path / "redis_password").unlink()
    again = _run(tmp_path)
    assert again.exit_code == 0, again.output
    new = (tmp_path / "redis_password").read_text()
    assert _users_password(tmp_path) == new
    summary = json.loads(again.output.strip().splitlines()[-1])
    assert summary["written"] == ["redis_password", "redis-users.conf"]
    assert f"sudo chown 999 {tmp_path / 'redis-users.conf'}" in again.output  # its owner named again


def test_a_users_file_behind_its_password_is_written_again(tmp_path: Path) -> None:
    """A folder rotated by the version before this fix: the users file still holds the old password."""
    assert _run(tmp_path).exit_code == 0
    (tmp_path / "redis_password").write_text("a-password-rotated-before-the-fix")
    again = _run(tmp_path)
    assert again.exit_code == 0, again.output
    assert _users_password(tmp_path) == "a-password-rotated-before-the-fix"
    assert json.loads(again.output.strip().splitlines()[-1])["written"] == ["redis-users.conf"]
    third = _run(tmp_path)  # in step: a rerun changes nothing
    assert json.loads(third.output.strip().splitlines()[-1])["written"] == []


def test_a_new_kafka_admin_password_beside_the_other_secrets_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Kafka volumes keep the vigil-broker password they were formatted with (kafka-start.sh sets
    it only then): a new file would lock kafka-access and the healthchecks out. Nothing is written."""
    assert _run(tmp_path).exit_code == 0
    (tmp_path / "kafka_admin_password").unlink()
    (tmp_path / "api_token").unlink()
    before = sorted(p.name for p in tmp_path.iterdir())
    refused = _run(tmp_path)
    assert isinstance(refused.exception, UserError), refused.output
    message = str(refused.exception)
    assert "\n" not in message and "kafka_admin_password" in message and "VIGIL_KAFKA_ADMIN_PASSWORD" in message
    assert "kafka-configs.sh" in message and "restart the Kafka nodes" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # not even the api token
    # the password the volumes were formatted with, given back through the former variable: written
    monkeypatch.setenv("VIGIL_KAFKA_ADMIN_PASSWORD", "the-password-the-volumes-know")
    done = _run(tmp_path)
    assert done.exit_code == 0, done.output
    assert (tmp_path / "kafka_admin_password").read_text() == "the-password-the-volumes-know"


def test_a_line_the_operator_added_to_redis_users_is_kept(tmp_path: Path) -> None:
    """Compared whole, a users file with the right password and one line the operator added (an
    exporter's user) was rewritten by a rerun, which is documented to change nothing, and the exporter
    lost its user. Only the vigil user's line is compared, and a new password replaces only it."""
    assert _run(tmp_path).exit_code == 0
    users = tmp_path / "redis-users.conf"
    exporter = "user exporter on >exporterpass123456 +info +ping"
    users.write_text(users.read_text() + exporter + "\n")
    before = users.read_bytes()
    again = _run(tmp_path)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output.strip().splitlines()[-1])["written"] == []
    assert users.read_bytes() == before
    (tmp_path / "redis_password").unlink()  # a rotation: the vigil user's line only
    rotated = _run(tmp_path)
    assert json.loads(rotated.output.strip().splitlines()[-1])["written"] == ["redis_password", "redis-users.conf"]
    assert _users_password(tmp_path) == (tmp_path / "redis_password").read_text()
    lines = users.read_text().splitlines()
    assert lines[0] == before.decode().splitlines()[0] and lines[2] == exporter and len(lines) == 3
    (tmp_path / "redis_password").write_text("a-password-rotated-by-hand")  # behind its password: the same
    assert json.loads(_run(tmp_path).output.strip().splitlines()[-1])["written"] == ["redis-users.conf"]
    assert _users_password(tmp_path) == "a-password-rotated-by-hand" and exporter in users.read_text()
