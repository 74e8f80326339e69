"""The secure embedded stack's users, ACLs and quotas: the roles of ``infra.kafka_access`` as SCRAM
users with generated passwords (``<home>/secrets/kafka-ingest.password``, ``kafka-subscriber.password``),
their grants and their client quotas (``infra.kafka_quotas``), written as the brokers' own super user
once the cluster is up. Idempotent: every start writes them again (an upgrade that adds a topic adds
its grant)."""

from __future__ import annotations

from typing import Any

from vigil.infra.connect import kafka_admin
from vigil.infra.kafka_access import Principals, access_grants, apply_grants
from vigil.infra.kafka_quotas import apply_quotas, role_quotas
from vigil.infra.secrets import KAFKA_BROKER_USER, KAFKA_CLIENT_USER, KAFKA_USER_PASSWORDS, ensure_secret
from vigil.infra.settings import Settings
from vigil.infra.stack.processes import StackError
from vigil.infra.stack.tls import SecureMaterial

SCRAM_ITERATIONS = 4096  # Kafka's minimum for SCRAM-SHA-512, what StorageTool uses too
# the role users and their password files (the service's user is created when the storage is formatted)
ROLE_USERS = tuple((user, secret) for user, secret in KAFKA_USER_PASSWORDS.items() if user != KAFKA_CLIENT_USER)


def grant_roles(settings: Settings, material: SecureMaterial) -> int:
    """Create the role users (the service's own was created at format time), write every grant and
    the outside roles' quotas. Returns the number of bindings written."""
    from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

    admin = _broker_admin(settings, material)
    try:
        upserts = [
            UserScramCredentialUpsertion(
                user,
                ScramMechanism.SCRAM_SHA_512,
                ensure_secret(settings.home, secret).get_secret_value(),
                SCRAM_ITERATIONS,
            )
            for user, secret in ROLE_USERS
        ]
        errors = {user: error for user, error in admin.alter_user_scram_credentials(upserts).items() if error}
        if errors:
            raise StackError(f"the broker refused the role users: {errors}")
        applied = apply_grants(admin, access_grants(Principals(), settings.app_id))
        refusal = applied.refusal(
            "a broker started without an authorizer (before this version): restart the stack "
            "(`vigil stack down`, then `vigil stack up --secure`)",
            "see the broker's log",
        )
        if refusal is not None:
            raise StackError(f"the broker {refusal}")
        quotas_refused = apply_quotas(admin, role_quotas(Principals()))
        if quotas_refused:
            quota, why = quotas_refused[0]
            raise StackError(f"the broker refused the quota {quota.key} of {quota.principal}: {why}: see its log")
        return applied.written
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
