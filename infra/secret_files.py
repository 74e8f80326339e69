"""Secrets given as files: every setting or variable that holds a password, a key or a token may
instead name a file holding it in ``<NAME>_FILE`` (the convention of Docker's official images).
docker-compose and Kubernetes mount secrets as files; a value in a container's environment is shown
by ``docker inspect`` and inherited by every process the container starts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from vigil.schemas.errors import UserError

MAX_SECRET_BYTES = 4096  # a password, key or token; a larger file is the wrong file


def read_secret_file(path: Path, variable: str) -> str:
    """The secret in ``path`` (``variable`` + ``_FILE`` named it), without the line end an editor or
    ``echo`` leaves; one line naming the variable when it cannot be read or is empty."""
    where = f"{variable}_FILE names {path}"
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_SECRET_BYTES + 1)
    except PermissionError as exc:
        raise UserError(
            f"{where}, which uid {os.getuid()} (this process's user) may not read: give it that owner"
        ) from exc
    except OSError as exc:
        raise UserError(f"{where}, which cannot be read ({exc.strerror or exc}): fix the path") from exc
    if len(data) > MAX_SECRET_BYTES:
        raise UserError(f"{where}, which is over {MAX_SECRET_BYTES} bytes: a secret file holds the secret alone")
    try:
        value = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise UserError(f"{where}, which is not UTF-8 text: a secret file holds the secret alone") from exc
    if not value:
        raise UserError(f"{where}, which is empty: write the secret into it")
    return value


def setting_from_file(data: object, field: str, variable: str) -> object:
    """For a settings model's ``mode="before"`` validator: ``field`` read from the file its
    ``<field>_file`` names (``variable``: the setting's environment name, for messages)."""
    if not isinstance(data, dict) or not data.get(f"{field}_file"):
        return data
    if data.get(field):
        raise UserError(f"both {variable} and {variable}_FILE are set: keep one")
    return {**data, field: read_secret_file(Path(data[f"{field}_file"]), variable)}


def env_secret(environ: Mapping[str, str], name: str) -> str:
    """The secret in the variable ``name``, or in the file ``name``_FILE names ('' when neither is set)."""
    value, file = environ.get(name, ""), environ.get(f"{name}_FILE", "")
    if value and file:
        raise UserError(f"both {name} and {name}_FILE are set: keep one")
    return read_secret_file(Path(file), name) if file else value
