"""Vigil's roles written to a cluster in one go, as a principal allowed to alter users, ACLs and the
cluster's configs (a super user): the SCRAM users of the roles that have a password, every role's
ACLs (``infra.kafka_access``) and the outside roles' client quotas (``infra.kafka_quotas``). The
secure embedded stack does this at every start (``infra.stack.access``); docker-compose's one-shot
``kafka-access`` service does it with ``vigil stack access --apply``. Idempotent: a user is upserted
(a changed password replaces the old one), Kafka keeps one copy of each binding and each quota."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import SecretStr

from vigil.infra.kafka_access import Principals, access_grants, apply_grants, former_grants, withdraw_grants
from vigil.infra.kafka_quotas import apply_quotas, role_quotas
from vigil.infra.secrets import password_problem

SCRAM_ITERATIONS: Final = 4096  # Kafka's minimum for SCRAM-SHA-512, what StorageTool uses too
# besides letters and digits (what `openssl rand -hex` and `secrets.token_urlsafe` give): nothing a
# JAAS line ("), StorageTool's --add-scram (, ] =) or a shell's word splitting would read otherwise
SCRAM_PASSWORD_SYMBOLS: Final = "._~+/-"
SUPER_USER_HINT: Final = "connect as a super user of the cluster, or see the broker's log"


class RolesRefused(Exception):
    """The cluster refused a user, a binding or a quota: what, for one line to a person."""


def scram_password_problem(password: str) -> str | None:
    """Why ``password`` cannot be a SCRAM password here (None when it can)."""
    return password_problem(password, SCRAM_PASSWORD_SYMBOLS)


def apply_roles(admin: Any, passwords: Mapping[str, SecretStr], app_id: str, no_authorizer: str) -> int:
    """Upsert the SCRAM users of ``passwords`` (user name -> password), then write every role's ACLs,
    withdraw those earlier versions wrote that the roles no longer have (the service's ALL), and write
    the quotas with the kafka-python ``admin``. Returns the number of bindings written; raises
    ``RolesRefused`` on the first kind of refusal (``no_authorizer``: the remedy when the cluster has
    no authorizer at all)."""
    from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

    try:
        grants = access_grants(Principals(), app_id)
    except ValueError as exc:  # an app id the subscribers' groups would cover
        raise RolesRefused(f"cannot grant the roles: {exc}") from None
    if passwords:
        upserts = [
            UserScramCredentialUpsertion(user, ScramMechanism.SCRAM_SHA_512, pw.get_secret_value(), SCRAM_ITERATIONS)
            for user, pw in passwords.items()
        ]
        errors = {user: error for user, error in admin.alter_user_scram_credentials(upserts).items() if error}
        if errors:
            user, error = next(iter(errors.items()))
            raise RolesRefused(f"refused the SCRAM user {user}: {getattr(error, '__name__', error)}: {SUPER_USER_HINT}")
    applied = apply_grants(admin, grants)
    refusal = applied.refusal(no_authorizer, SUPER_USER_HINT)
    if refusal is not None:
        raise RolesRefused(refusal)
    # after the new grants are in: the service is never without access in between
    withdrawn = withdraw_grants(admin, former_grants(Principals(), app_id))
    refusal = withdrawn.refusal(no_authorizer, SUPER_USER_HINT)
    if refusal is not None:
        raise RolesRefused(refusal)
    quotas_refused = apply_quotas(admin, role_quotas(Principals()))
    if quotas_refused:
        quota, why = quotas_refused[0]
        raise RolesRefused(f"refused the quota {quota.key} of {quota.principal}: {why}: {SUPER_USER_HINT}")
    return applied.written
