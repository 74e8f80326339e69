"""The outside roles' client quotas: what is asked of the cluster (each client id of the role's
user on its own), what a refusal says, and the command's one-line errors."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from vigil.infra.kafka_access import Principals
from vigil.infra.kafka_quotas import (
    FETCH,
    INGEST_BYTES_PER_S,
    PRODUCE,
    SUBSCRIBER_BYTES_PER_S,
    apply_quotas,
    read_quotas,
    role_quotas,
    user_of,
)
from vigil.schemas.errors import UserError


def test_the_outside_roles_are_quoted_and_the_service_is_not() -> None:
    quotas = role_quotas(Principals())
    assert [(q.role, q.user, q.key, q.value) for q in quotas] == [
        ("ingest", "vigil-ingest", PRODUCE, float(INGEST_BYTES_PER_S)),
        ("subscriber", "vigil-subscriber", FETCH, float(SUBSCRIBER_BYTES_PER_S)),
    ]
    assert "vigil" not in {q.user for q in quotas}  # the workers' pace is the patients'
    dn = role_quotas(Principals(ingest="User:CN=ehr-gateway,O=Hospital"), 1000, 2000)
    assert [(q.user, q.value) for q in dn] == [("CN=ehr-gateway,O=Hospital", 1000.0), ("vigil-subscriber", 2000.0)]


@pytest.mark.parametrize("principal", ["Group:ehr", "User:", "vigil-ingest"])
def test_a_principal_that_can_have_no_quota_is_refused(principal: str) -> None:
    with pytest.raises(ValueError, match="User principals"):
        user_of(principal)
    with pytest.raises(ValueError):
        role_quotas(Principals(ingest=principal))


def test_a_quota_is_above_zero() -> None:
    with pytest.raises(ValueError, match="above 0"):
        role_quotas(Principals(), 0)


class Cluster:
    """An admin client's connection manager that answers as a broker would (``refuse``: the error
    code of every entry), keeping what was asked."""

    def __init__(self, refuse: int = 0) -> None:
        self.asked: list[Any] = []
        self.refuse = refuse
        self._manager = self

    def run(self, send: Any, request: Any) -> Any:
        return send(request)

    def send(self, request: Any) -> Any:
        self.asked.append(request)
        if type(request).__name__ == "AlterClientQuotasRequest":
            return SimpleNamespace(
                entries=[SimpleNamespace(error_code=self.refuse, entity=e.entity) for e in request.entries]
            )
        user = request.components[0].match
        values = [SimpleNamespace(key=PRODUCE, value=5.0)] if user == "vigil-ingest" else []
        return SimpleNamespace(error_code=0, error_message=None, entries=[SimpleNamespace(values=values)])


def test_each_client_id_of_the_user_gets_the_quota_on_its_own() -> None:
    cluster = Cluster()
    assert apply_quotas(cluster, role_quotas(Principals())) == []
    (request,) = cluster.asked
    assert not request.validate_only
    first = request.entries[0]
    assert [(e.entity_type, e.entity_name) for e in first.entity] == [("user", "vigil-ingest"), ("client-id", None)]
    assert [(o.key, o.value, o.remove) for o in first.ops] == [(PRODUCE, float(INGEST_BYTES_PER_S), False)]
    assert read_quotas(cluster, ["vigil-ingest", "vigil-subscriber"]) == {
        "vigil-ingest": {PRODUCE: 5.0},
        "vigil-subscriber": {},
    }
    describe = cluster.asked[1]
    assert describe.strict and [(c.entity_type, c.match_type, c.match) for c in describe.components] == [
        ("user", 0, "vigil-ingest"),
        ("client-id", 1, None),  # the default client id: each client id without one of its own
    ]


def test_a_refusal_names_the_quota_and_the_error() -> None:
    refused = apply_quotas(Cluster(refuse=31), role_quotas(Principals()))  # CLUSTER_AUTHORIZATION_FAILED
    assert [(q.role, why) for q, why in refused] == [
        ("ingest", "ClusterAuthorizationFailedError"),
        ("subscriber", "ClusterAuthorizationFailedError"),
    ]


def cli() -> Any:
    import typer

    from vigil.cli.stack import register

    app = typer.Typer()
    register(app)
    return app


def test_the_command_lists_them_and_refuses_a_principal_without_a_user() -> None:
    runner = CliRunner()
    listed = runner.invoke(cli(), ["stack", "quotas", "--ingest-bytes-per-s", "2097152", "--json"])
    assert listed.exit_code == 0, listed.output
    summary = json.loads(listed.output.strip().splitlines()[-1])
    assert summary["applied"] is False
    assert [(q["role"], q["user"], q["value"]) for q in summary["quotas"]] == [
        ("ingest", "vigil-ingest", 2097152.0),
        ("subscriber", "vigil-subscriber", float(SUBSCRIBER_BYTES_PER_S)),
    ]
    wrong = runner.invoke(cli(), ["stack", "quotas", "--ingest", "Group:ehr"])
    assert isinstance(wrong.exception, UserError)
    assert "client quotas are kept for User principals" in str(wrong.exception)


@pytest.mark.parametrize(
    ("cluster", "said"),
    [
        (Cluster(refuse=31), "refused 2 of 2 quotas (first: producer_byte_rate of User:vigil-ingest: "),
        (Cluster(), "reads back producer_byte_rate of User:vigil-ingest as 5.0, not 1048576"),
    ],
)
def test_apply_says_in_one_line_what_the_cluster_refused_or_kept_otherwise(
    cluster: Cluster, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vigil.cli import preflight
    from vigil.infra import connect

    cluster.close = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setattr(preflight, "require_broker", lambda settings: "127.0.0.1:9092")
    monkeypatch.setattr(connect, "kafka_admin", lambda settings, **options: cluster)
    out = CliRunner().invoke(cli(), ["stack", "quotas", "--apply"])
    assert isinstance(out.exception, UserError), out.output
    assert said in str(out.exception)
