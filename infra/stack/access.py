"""The secure embedded stack's users, ACLs and quotas: the roles of ``infra.kafka_access`` as SCRAM
users with generated passwords (``<home>/secrets/kafka-ingest.password``, ``kafka-subscriber.password``),
their grants and their client quotas (``infra.kafka_quotas``), written as the brokers' own super user
once the cluster is up (``infra.kafka_roles``). Idempotent: every start writes them again (an upgrade
that adds a topic adds its grant)."""

from __future__ import annotations

from typing import Any

from vigil.infra.connect import kafka_admin
from vigil.infra.kafka_roles import RolesRefused, apply_roles
from vigil.infra.secrets import KAFKA_BROKER_USER, KAFKA_CLIENT_USER, KAFKA_USER_PASSWORDS, ensure_secret
from vigil.infra.settings import Settings
from vigil.infra.stack.processes import StackError
from vigil.infra.stack.tls import SecureMaterial

# the role users and their password files (the service's user is created when the storage is formatted)
ROLE_USERS = tuple((user, secret) for user, secret in KAFKA_USER_PASSWORDS.items() if user != KAFKA_CLIENT_USER)


def grant_roles(settings: Settings, material: SecureMaterial) -> int:
    """Create the role users (the service's own was created at format time), write every grant and
    the outside roles' quotas. Returns the number of bindings written."""
    admin = _broker_admin(settings, material)
    try:
        passwords = {user: ensure_secret(settings.home, secret) for user, secret in ROLE_USERS}
        return apply_roles(
            admin,
            passwords,
            settings.app_id,
            no_authorizer="a broker started without an authorizer (before this version): restart the stack "
            "(`vigil stack down`, then `vigil stack up --secure`)",
        )
    except RolesRefused as exc:
        raise StackError(f"the broker {exc}") from exc
    finally:
        admin.close()


def _broker_admin(settings: Settings, material: SecureMaterial) -> Any:
    """An admin client as the brokers' super user: only the stack itself uses it."""
    return kafka_admin(
        settings,
        client_id="vigil-stack",
        sasl_plain_username=KAFKA_BROKER_USER,
        sasl_plain_password=material.broker_password.get_secret_value(),
    )
