"""``vigil stack access``: every role's SCRAM user, ACLs and quotas written in one go, as a super user
of the cluster (docker-compose's one-shot ``kafka-access`` service), the passwords from the environment
or from the files its ``*_FILE`` variables name (compose's secrets)."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from pydantic import SecretStr
from rich.console import Console

from vigil.cli.jsonout import emit_json
from vigil.infra.kafka_access import Principals, access_grants
from vigil.infra.kafka_quotas import role_quotas
from vigil.infra.secret_files import env_secret
from vigil.infra.secrets import KAFKA_CLIENT_USER, KAFKA_INGEST_USER, KAFKA_SUBSCRIBER_USER
from vigil.infra.settings import get_settings
from vigil.schemas.errors import UserError

console = Console(stderr=False)

# each role user's password, from the variable or the file its <name>_FILE names (docker-compose.yml
# mounts the secret kafka_password here as VIGIL_KAFKA_PASSWORD_FILE and in Vigil's containers as
# VIGIL_KAFKA__SASL_PASSWORD_FILE)
PASSWORD_ENVS = {
    KAFKA_CLIENT_USER: "VIGIL_KAFKA_PASSWORD",
    KAFKA_INGEST_USER: "VIGIL_KAFKA_INGEST_PASSWORD",
    KAFKA_SUBSCRIBER_USER: "VIGIL_KAFKA_SUBSCRIBER_PASSWORD",
}


def role_passwords(environ: dict[str, str]) -> dict[str, SecretStr]:
    """The role users that have a password in ``environ`` or in the file its ``*_FILE`` names (an empty
    variable: no user); one line naming the variable when a password cannot be one."""
    from vigil.infra.kafka_roles import scram_password_problem

    passwords = {}
    for user, name in PASSWORD_ENVS.items():
        value = env_secret(environ, name)
        if not value:
            continue
        problem = scram_password_problem(value)
        if problem is not None:
            raise UserError(f"{name} (the password of Kafka user {user}) {problem}")
        passwords[user] = SecretStr(value)
    return passwords


def access(
    apply: bool = typer.Option(
        False,
        "--apply",
        help="write them to the configured cluster, as the principal you connect as (a super user)",
    ),
    json_out: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """The SCRAM users of Vigil's roles (vigil, vigil-ingest, vigil-subscriber: each whose password is
    in VIGIL_KAFKA_PASSWORD, VIGIL_KAFKA_INGEST_PASSWORD, VIGIL_KAFKA_SUBSCRIBER_PASSWORD, or in the
    file each one's *_FILE variable names), every
    role's ACLs (`vigil stack acls`) and the outside roles' quotas (`vigil stack quotas`). Lists them;
    --apply writes them all (a changed password replaces the old one), as docker-compose's one-shot
    kafka-access service does at every `docker compose up`."""
    settings = get_settings()
    passwords = role_passwords(dict(os.environ))
    try:
        grants = access_grants(Principals(), settings.app_id)
    except ValueError as exc:  # VIGIL_APP_ID under the subscribers' group prefix
        raise UserError(f"VIGIL_APP_ID {settings.app_id!r}: {exc}") from None
    quotas = role_quotas(Principals())
    users = sorted(passwords)
    console.print(
        f"SCRAM users {', '.join(users) or '(none: no password set)'}; {len(grants)} ACLs; {len(quotas)} quotas"
    )
    summary: dict[str, object] = {"users": users, "acls": len(grants), "quotas": len(quotas), "applied": False}
    if apply:
        from vigil.cli.preflight import require_broker
        from vigil.infra.connect import kafka_admin
        from vigil.infra.kafka_roles import RolesRefused, apply_roles

        bootstrap = require_broker(settings)
        admin = kafka_admin(settings, client_id="vigil-access")
        try:
            written = apply_roles(
                admin,
                passwords,
                settings.app_id,
                no_authorizer="the cluster has no authorizer (authorizer.class.name), so no ACL would be "
                "enforced: configure one (docs/security.md)",
            )
        except RolesRefused as exc:
            raise UserError(f"the cluster at {bootstrap} {exc}") from exc
        finally:
            admin.close()
        summary.update(applied=True, bootstrap=bootstrap, written=written)
        console.print(f"written to the cluster at {bootstrap}")
    if json_out:
        emit_json(summary)
