"""Secrets given as files (``<NAME>_FILE``, infra/secret_files.py): every secret setting reads its file,
without the line end; a file that cannot be used, or a secret set twice, is one line naming the variable
and never the value."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vigil.infra.secret_files import env_secret, read_secret_file
from vigil.infra.settings import Settings
from vigil.schemas.errors import UserError

# every secret setting: environment name -> how Settings holds it
SECRET_SETTINGS = {
    "VIGIL_KAFKA__SASL_PASSWORD": lambda s: s.kafka.sasl_password,
    "VIGIL_REDIS__PASSWORD": lambda s: s.redis.password,
    "VIGIL_WEB__SESSION_SECRET": lambda s: s.web.session_secret,
    "VIGIL_LOG_HASH_KEY": lambda s: s.log_hash_key,
    "VIGIL_STATE_HASH_KEY": lambda s: s.state_hash_key,
    "VIGIL_API_TOKEN": lambda s: s.api_token,
}


def test_every_secret_setting_is_a_secret_that_may_come_from_a_file() -> None:
    from pydantic import SecretStr

    def secrets_of(model: type, prefix: str) -> set[str]:
        found = set()
        for name, field in model.model_fields.items():
            if isinstance(field.annotation, type) and hasattr(field.annotation, "model_fields"):
                found |= secrets_of(field.annotation, f"{prefix}{name.upper()}__")
            elif SecretStr in getattr(field.annotation, "__args__", (field.annotation,)):
                found.add(f"{prefix}{name.upper()}")
                assert f"{name}_file" in model.model_fields, f"{prefix}{name.upper()} has no _FILE"
        return found

    assert secrets_of(Settings, "VIGIL_") == set(SECRET_SETTINGS)


@pytest.mark.parametrize("variable", sorted(SECRET_SETTINGS))
def test_a_secret_setting_reads_its_file(variable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret-value_with.symbols=\n")  # `echo` leaves the line end
    monkeypatch.setenv(f"{variable}_FILE", str(secret))
    value = SECRET_SETTINGS[variable](Settings())
    assert value is not None and value.get_secret_value() == "s3cret-value_with.symbols="


@pytest.mark.parametrize("variable", sorted(SECRET_SETTINGS))
def test_a_secret_set_twice_is_refused(variable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-the-file")
    monkeypatch.setenv(f"{variable}_FILE", str(secret))
    monkeypatch.setenv(variable, "from-the-environment")
    with pytest.raises(UserError, match=f"both {variable} and {variable}_FILE are set"):
        Settings()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "cannot be read"),
        (b"", "empty"),
        (b"\n", "empty"),
        (b"\xff\xfe", "not UTF-8"),
        (b"x" * 5000, "over 4096 bytes"),
    ],
)
def test_a_file_that_cannot_be_a_secret_is_one_line_without_its_content(
    content: bytes | None, why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vigil.cli.errors import explain

    path = tmp_path / "redis_password"
    if content is not None:
        path.write_bytes(content)
    monkeypatch.setenv("VIGIL_REDIS__PASSWORD_FILE", str(path))
    with pytest.raises(UserError) as refused:
        Settings()
    line, code = explain(refused.value)
    assert code != 0 and "\n" not in line
    assert line.startswith(f"VIGIL_REDIS__PASSWORD_FILE names {path}, which") and why in line
    assert "xxxx" not in line


def test_a_directory_or_an_unreadable_file_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="cannot be read .*: fix the path"):
        read_secret_file(tmp_path, "VIGIL_API_TOKEN")
    secret = tmp_path / "api_token"
    secret.write_text("token")

    def refused(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(secret))

    monkeypatch.setattr(Path, "open", refused)  # as a file 0600 of another owner (root reads any)
    with pytest.raises(UserError, match=rf"uid {os.getuid()} \(this process's user\) may not read: give it that owner"):
        read_secret_file(secret, "VIGIL_API_TOKEN")


def test_env_secret_takes_the_variable_or_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "kafka_password"
    secret.write_text("from-the-file\r\n")
    assert env_secret({}, "VIGIL_KAFKA_PASSWORD") == ""
    assert env_secret({"VIGIL_KAFKA_PASSWORD": "value"}, "VIGIL_KAFKA_PASSWORD") == "value"
    assert env_secret({"VIGIL_KAFKA_PASSWORD_FILE": str(secret)}, "VIGIL_KAFKA_PASSWORD") == "from-the-file"
    with pytest.raises(UserError, match="keep one"):
        env_secret({"VIGIL_KAFKA_PASSWORD": "v", "VIGIL_KAFKA_PASSWORD_FILE": str(secret)}, "VIGIL_KAFKA_PASSWORD")
    # a secret inside keeps its inner spaces: only the line end is taken off
    secret.write_text("two words \n")
    assert env_secret({"X_FILE": str(secret)}, "X") == "two words "
