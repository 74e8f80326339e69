"""``vigil stack redis-users``: the Redis config file of docker-compose's Redis, with Vigil's ACL user
(the embedded stack's rules: ``infra.stack.redis_server.CLIENT_RULES``) and an unauthenticated
``default`` user that may only PING (compose's healthcheck)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.jsonout import emit_json
from vigil.infra.secret_files import env_secret
from vigil.infra.secrets import REDIS_USER, password_problem, write_private
from vigil.infra.stack.redis_server import PING_ONLY_DEFAULT, client_acl
from vigil.schemas.errors import UserError

PASSWORD_ENV = "VIGIL_REDIS_PASSWORD"  # or VIGIL_REDIS_PASSWORD_FILE: the file holding it
PASSWORD_SYMBOLS = "._~+/=-"  # besides letters and digits: nothing Redis' config parser reads


def users_file(password: str) -> bytes:
    """Compose's Redis users file: the PING-only default (the healthcheck) and Vigil's user."""
    return f"{PING_ONLY_DEFAULT}\n{client_acl(password)}\n".encode()


def redis_users(
    out: Path = typer.Option(Path("deploy/secrets/redis-users.conf"), "--out", help="the file to write (mode 0600)"),
    json_out: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """Write docker-compose's Redis users: `vigil` with the password in VIGIL_REDIS_PASSWORD (or in
    the file VIGIL_REDIS_PASSWORD_FILE names), allowed Vigil's keys only and no dangerous
    command; `default`, for a connection that does not sign in, allowed only PING. The file holds the
    password: it is written readable by its owner alone (give it the Redis image's user, uid 999)."""
    password = env_secret(os.environ, PASSWORD_ENV)
    problem = password_problem(password, PASSWORD_SYMBOLS)
    if problem is not None:
        raise UserError(f"{PASSWORD_ENV} {problem}: docker-compose.yml gives the same to Vigil")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent} is not a folder: create it, or give --out another path")
    write_private(out, users_file(password))
    typer.echo(f"wrote {out}: Redis users default (PING only) and {REDIS_USER}; next: sudo chown 999 {out}")
    if json_out:
        emit_json({"path": str(out), "users": ["default", REDIS_USER]})
