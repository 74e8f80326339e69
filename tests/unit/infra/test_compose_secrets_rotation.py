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


DOTENV = "VIGIL_KAFKA_ADMIN_PASSWORD=the-password-the-volumes-know\nexport VIGIL_LOG_HASH_KEY='a-key-used-for-a-year'\n"


def test_secrets_kept_in_compose_dotenv_and_not_exported_stop_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment from before 6 December 2026 kept its secrets in compose's .env, which compose read
    and this command does not: new values were generated (exit 0), the Kafka volumes kept the old
    admin password and a new log hash key stranded every patient's Redis state. One line, no value in
    it, nothing written; exported as it says, the old values are taken."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(DOTENV)
    out = tmp_path / "deploy" / "secrets"
    out.mkdir(parents=True)
    refused = _run(out)
    assert isinstance(refused.exception, UserError), refused.output
    message = str(refused.exception)
    assert "\n" not in message and "VIGIL_KAFKA_ADMIN_PASSWORD, VIGIL_LOG_HASH_KEY" in message
    assert "set -a; . ./.env; set +a" in message
    assert "the-password-the-volumes-know" not in message and "a-key-used-for-a-year" not in message
    assert not list(out.iterdir())
    monkeypatch.setenv("VIGIL_KAFKA_ADMIN_PASSWORD", "the-password-the-volumes-know")
    monkeypatch.setenv("VIGIL_LOG_HASH_KEY", "a-key-used-for-a-year")
    done = _run(out)
    assert done.exit_code == 0, done.output
    assert (out / "kafka_admin_password").read_text() == "the-password-the-volumes-know"
    assert (out / "log_hash_key").read_text() == "a-key-used-for-a-year"
    monkeypatch.delenv("VIGIL_KAFKA_ADMIN_PASSWORD")
    monkeypatch.delenv("VIGIL_LOG_HASH_KEY")
    assert _run(out).exit_code == 0  # their files are there: what .env still says changes nothing


def test_the_dotenv_beside_the_compose_file_above_out_counts_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compose reads .env from its project folder (the compose file's), not from where this command
    runs: `--out /srv/vigil/deploy/secrets` from elsewhere is checked against /srv/vigil/.env."""
    project = tmp_path / "srv" / "vigil"
    (project / "deploy" / "secrets").mkdir(parents=True)
    (project / "docker-compose.yml").write_text("name: vigil\n")
    (project / ".env").write_text("# before 6 December 2026\nVIGIL_API_TOKEN=the-fhir-servers-token\nVIGIL_HOME=\n")
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    refused = _run(project / "deploy" / "secrets")
    assert isinstance(refused.exception, UserError), refused.output
    message = str(refused.exception)
    assert message.startswith(f"{project / '.env'} sets VIGIL_API_TOKEN,") and f". {project / '.env'};" in message
    (project / ".env").write_text("VIGIL_API_TOKEN=\nCOMPOSE_PROJECT_NAME=vigil\n")  # names no value: nothing kept
    assert _run(project / "deploy" / "secrets").exit_code == 0


def test_a_dotenv_refusal_is_one_line_and_a_json_summary(tmp_path: Path) -> None:
    """Through the real console script, as the command's other failures: exit 2, one line on stderr,
    {"ok": false} last on stdout."""
    import os
    import subprocess
    import sys

    (tmp_path / ".env").write_text(DOTENV)
    (tmp_path / "secrets").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIGIL_")} | {"VIGIL_HOME": str(tmp_path / "h")}
    vigil = str(Path(sys.executable).parent / "vigil")
    done = subprocess.run(
        [vigil, "stack", "compose-secrets", "--out", "secrets", "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: .env sets VIGIL_KAFKA_ADMIN_PASSWORD")
    assert json.loads(done.stdout.strip().splitlines()[-1])["ok"] is False
    assert "the-password-the-volumes-know" not in done.stdout + done.stderr


def test_a_dotenv_value_is_read_as_compose_and_sh_read_it() -> None:
    """``NAME="" # moved`` is empty to compose and to ``. ./.env``: counted as a secret there, the
    command refused again after the user had exported the file as told, every time."""
    from vigil.cli.compose_secrets import _dotenv_names

    text = 'A="" # moved\nB= # none\nC=abc # set\nD=\'x#y\'\nE=a#b\nexport F="v"\nG=\nH=""\n#I=1\nJ=#Xk9\n'
    assert _dotenv_names(text) == {"C", "D", "E", "F", "J"}  # J: a secret that begins with '#'
