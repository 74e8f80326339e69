"""The roles' Kafka grants: each role may do its job and nothing more (read as Kafka's authorizer
reads them: a literal or prefixed name, ALL covers every operation, READ and WRITE imply DESCRIBE)."""

from __future__ import annotations

import json

import pytest
import typer
from kafka.errors import ClusterAuthorizationFailedError
from typer.testing import CliRunner

from vigil.infra.kafka_access import (
    INGEST_TOPICS,
    SUBSCRIBER_READS,
    SUBSCRIBER_WRITES,
    Grant,
    Principals,
    access_grants,
    apply_grants,
    principal,
)
from vigil.schemas import topics

P = Principals()
# topics only the service touches: what it derives (events, scores' inputs), what holds raw bytes
# or identities (dead letters, audit), and the dashboard's ward drift
SERVICE_ONLY = (topics.EVENTS, topics.DEADLETTER, topics.AUDIT, topics.DRIFT)


def allows(grants: list[Grant], who: str, operation: str, resource: str, name: str) -> bool:
    implied = {
        "DESCRIBE": {"DESCRIBE", "READ", "WRITE", "DELETE", "ALTER", "ALL"},
        "DESCRIBE_CONFIGS": {"DESCRIBE_CONFIGS", "ALTER_CONFIGS", "ALL"},
    }.get(operation, {operation, "ALL"})
    return any(
        g.principal == who
        and g.resource == resource
        and g.operation in implied
        and (g.name == name if g.pattern == "literal" else name.startswith(g.name))
        for g in grants
    )


def test_every_topic_has_a_decided_audience() -> None:
    """A new topic must be placed: inbound (ingest), outbound (subscriber) or the service's only."""
    placed = set(INGEST_TOPICS) | set(SUBSCRIBER_READS) | set(SUBSCRIBER_WRITES) | set(SERVICE_ONLY)
    assert set(topics.ALL_TOPICS) == placed
    assert len(placed) == len(INGEST_TOPICS) + len(SUBSCRIBER_READS) + len(SUBSCRIBER_WRITES) + len(SERVICE_ONLY)


def test_an_ehr_integration_writes_the_inbound_topics_and_nothing_else() -> None:
    grants = access_grants(P)
    for topic in topics.ALL_TOPICS:
        assert allows(grants, P.ingest, "WRITE", "topic", topic) == (topic in INGEST_TOPICS), topic
        assert not allows(grants, P.ingest, "READ", "topic", topic), topic
    assert not allows(grants, P.ingest, "READ", "group", "vigil")
    assert not allows(grants, P.ingest, "CREATE", "cluster", "kafka-cluster")


def test_a_monitoring_system_reads_alerts_and_scores_and_answers_acks_only() -> None:
    grants = access_grants(P)
    for topic in topics.ALL_TOPICS:
        assert allows(grants, P.subscriber, "READ", "topic", topic) == (topic in SUBSCRIBER_READS), topic
        assert allows(grants, P.subscriber, "WRITE", "topic", topic) == (topic == topics.ALERT_ACKS), topic
    # a forged alert, a read of the dead letters' original bytes: refused
    assert not allows(grants, P.subscriber, "WRITE", "topic", topics.ALERTS)
    assert not allows(grants, P.subscriber, "READ", "topic", topics.DEADLETTER)
    # its consumer groups only, never the workers' (it would steal their partitions)
    assert allows(grants, P.subscriber, "READ", "group", "vigil-subscriber-pager")
    assert not allows(grants, P.subscriber, "READ", "group", "vigil")
    assert not allows(grants, P.subscriber, "READ", "group", "pager")


def test_the_service_runs_every_topic_its_groups_and_faust_internals() -> None:
    grants = access_grants(P, app_id="vigil")
    for topic in (*topics.ALL_TOPICS, "vigil-__assignor-__leader", "vigil-bench-baseline-changelog"):
        for op in ("READ", "WRITE", "DESCRIBE", "ALTER"):
            assert allows(grants, P.service, op, "topic", topic), (topic, op)
    assert allows(grants, P.service, "READ", "group", "vigil")
    assert allows(grants, P.service, "CREATE", "cluster", "kafka-cluster")
    assert not allows(grants, P.service, "ALTER", "cluster", "kafka-cluster")  # ACLs and users are not its to change
    assert not allows(grants, P.service, "READ", "topic", "billing.invoices")  # another tenant's topics


def test_an_app_id_outside_vigil_gets_its_own_prefix_once() -> None:
    named = [g for g in access_grants(P, app_id="hospital-a") if g.role == "service" and g.pattern == "prefixed"]
    assert sorted({g.name for g in named}) == ["hospital-a", "vigil"]
    assert allows(access_grants(P, app_id="hospital-a"), P.service, "READ", "group", "hospital-a")
    canary = access_grants(P, app_id="vigil-canary")
    assert sorted({g.name for g in canary if g.role == "service" and g.pattern == "prefixed"}) == ["vigil"]
    assert len(set(access_grants(P))) == len(access_grants(P))  # no binding twice


def test_principal_names() -> None:
    assert principal("vigil-ingest") == "User:vigil-ingest"
    assert principal(" User:pager ") == "User:pager"
    assert principal("User:CN=gw.example.org,OU=ICU") == "User:CN=gw.example.org,OU=ICU"
    assert principal("CN=gw:1,OU=ICU") == "User:CN=gw:1,OU=ICU"  # a certificate DN gets its type
    for bad in ("", "  ", "User:"):
        with pytest.raises(ValueError):
            principal(bad)


class _Admin:
    """kafka-python 3's create_acls answer: the ACL objects written and, in order, the error classes
    of the others (``KafkaAdminClient._convert_create_acls_response_to_acls``)."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse

    def create_acls(self, acls: list) -> dict:
        failed = [ClusterAuthorizationFailedError for a in acls if a.principal in self.refuse]
        return {"succeeded": [a for a in acls if a.principal not in self.refuse], "failed": failed}


def test_a_refused_binding_is_named_with_its_grant() -> None:
    grants = access_grants(P)
    applied = apply_grants(_Admin({P.ingest}), grants)
    assert applied.written == len(grants) - len(INGEST_TOPICS) * 2
    assert {g.principal for g, _ in applied.refused} == {P.ingest}
    assert {g.name for g, _ in applied.refused} == set(INGEST_TOPICS)
    assert all(why == "ClusterAuthorizationFailedError" for _, why in applied.refused)


def test_cli_lists_the_grants_and_refuses_an_empty_principal() -> None:
    from vigil.cli.stack import register

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    out = runner.invoke(app, ["stack", "acls", "--ingest", "CN=gw.example.org", "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output.strip().splitlines()[-1])
    assert summary["applied"] is False
    assert {g["principal"] for g in summary["grants"] if g["role"] == "ingest"} == {"User:CN=gw.example.org"}
    bad = runner.invoke(app, ["stack", "acls", "--subscriber", ""])
    assert bad.exit_code == 2


def test_the_stack_names_a_broker_without_an_authorizer(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A secure broker started before roles were enforced (no authorizer) answers SecurityDisabled:
    `vigil stack up` says to restart the stack, not that ACLs are broken."""
    from kafka.errors import SecurityDisabledError
    from pydantic import SecretStr

    from vigil.infra.settings import Settings
    from vigil.infra.stack import access
    from vigil.infra.stack.processes import StackError
    from vigil.infra.stack.tls import SecureMaterial

    class NoAuthorizer:
        def alter_user_scram_credentials(self, upserts: list) -> dict:
            return {u.user: None for u in upserts}

        def create_acls(self, acls: list) -> dict:
            return {"succeeded": [], "failed": [SecurityDisabledError for _ in acls]}

        def close(self) -> None:
            pass

    monkeypatch.setattr(access, "_broker_admin", lambda settings, material: NoAuthorizer())
    material = SecureMaterial(tmp_path / "ca.pem", tmp_path / "broker.pem", SecretStr("a"), SecretStr("b"))
    with pytest.raises(StackError, match=r"the broker refused 33 of 33 ACLs .*SecurityDisabledError.*vigil stack down"):
        access.grant_roles(Settings(home=tmp_path), material)
    assert (tmp_path / "secrets" / "kafka-ingest.password").exists()  # generated, 0600 (secrets.py)


def test_cli_apply_to_a_cluster_without_an_authorizer_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plain embedded stack (or a cluster without an authorizer) answers SecurityDisabled: one
    line that says no ACL would be enforced, exit code 2, not "ask your administrator"."""
    from kafka.errors import SecurityDisabledError

    from vigil.cli import preflight
    from vigil.cli.stack import register
    from vigil.infra import connect
    from vigil.schemas.errors import UserError

    class NoAuthorizer:
        def create_acls(self, acls: list) -> dict:
            return {"succeeded": [], "failed": [SecurityDisabledError for _ in acls]}

        def close(self) -> None:
            pass

    monkeypatch.setattr(preflight, "require_broker", lambda settings: "127.0.0.1:9092")
    monkeypatch.setattr(connect, "kafka_admin", lambda settings, **options: NoAuthorizer())
    app = typer.Typer()
    register(app)
    out = CliRunner().invoke(app, ["stack", "acls", "--apply"])
    assert isinstance(out.exception, UserError), out.output
    assert "refused 33 of 33" in str(out.exception) and "no authorizer" in str(out.exception)


def test_the_service_may_not_delete_a_topic_or_change_its_configs() -> None:
    """A stolen service password (a worker, the dashboard, MLLP) must not erase vigil.audit or shorten
    its retention: the service reads, writes, creates, describes and grows its topics, no more."""
    for app_id in ("vigil", "hospital-a"):
        grants = access_grants(P, app_id)
        for topic in (*topics.ALL_TOPICS, f"{app_id}-__assignor-__leader"):
            for op in ("DELETE", "ALTER_CONFIGS"):
                assert not allows(grants, P.service, op, "topic", topic), (app_id, topic, op)
            for op in ("READ", "WRITE", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS"):
                assert allows(grants, P.service, op, "topic", topic), (app_id, topic, op)
        assert not allows(grants, P.service, "DELETE", "group", app_id)
        assert allows(grants, P.service, "DESCRIBE", "group", app_id)
    assert "ALL" not in {g.operation for g in access_grants(P, "hospital-a")}
    assert len(access_grants(P)) == 33  # the count docs/security.md gives


def test_a_subscriber_group_prefix_covering_the_workers_group_is_refused() -> None:
    from vigil.infra.kafka_access import subscriber_groups_problem

    for prefix, app_id in (("vigil", "vigil"), ("vig", "vigil"), ("vigil-", "vigil-icu"), ("hosp", "hospital-a")):
        assert subscriber_groups_problem(prefix, app_id) is not None, (prefix, app_id)
        with pytest.raises(ValueError, match="covers the workers' consumer group"):
            access_grants(Principals(subscriber_groups=prefix), app_id)
    for prefix, app_id in (("vigil-subscriber", "vigil"), ("pager-", "vigil-icu"), ("vigil-subscriber", "hospital-a")):
        assert subscriber_groups_problem(prefix, app_id) is None, (prefix, app_id)


def test_cli_refuses_a_subscriber_group_prefix_covering_the_workers_group(monkeypatch: pytest.MonkeyPatch) -> None:
    """One line, exit code 2 and, under --json, {"ok": false} as the last line (the CLI's main)."""
    from vigil.cli.errors import explain
    from vigil.cli.stack import register
    from vigil.infra.settings import get_settings
    from vigil.schemas.errors import UserError

    app = typer.Typer()
    register(app)
    for groups, app_id in (("vigil", "vigil"), ("vigil-", "vigil-icu")):
        monkeypatch.setenv("VIGIL_APP_ID", app_id)
        get_settings.cache_clear()
        out = CliRunner().invoke(app, ["stack", "acls", "--subscriber-groups", groups, "--json"])
        assert isinstance(out.exception, UserError), out.output
        line, code = explain(out.exception, ["stack", "acls", "--json"])
        assert code == 2 and "\n" not in line and "--subscriber-groups" in line and app_id in line
        assert '"grants"' not in out.output  # nothing listed as if it were fine
    get_settings.cache_clear()


def test_a_wildcard_principal_is_refused() -> None:
    """``User:*`` is every authenticated user to Kafka: the role would be everyone's."""
    for bad in ("*", "User:*", " User: * ", "User: "):
        with pytest.raises(ValueError):
            principal(bad)
    refused = CliRunner().invoke(_cli(), ["stack", "acls", "--ingest", "*"])
    assert refused.exit_code == 2 and "User:*" not in refused.output


def _cli() -> typer.Typer:
    from vigil.cli.stack import register

    app = typer.Typer()
    register(app)
    return app


class _Cluster:
    """An authorizer's bindings, as kafka-python's create_acls and delete_acls answer for them."""

    def __init__(self, bindings: set[tuple]) -> None:
        self.bindings = bindings

    @staticmethod
    def key(acl) -> tuple:  # type: ignore[no-untyped-def]
        r = acl.resource_pattern
        return (acl.principal, acl.host, acl.operation.name, r.resource_type.name, r.resource_name, r.pattern_type.name)

    def alter_user_scram_credentials(self, upserts: list) -> dict:
        return {u.user: None for u in upserts}

    def create_acls(self, acls: list) -> dict:
        self.bindings |= {self.key(a) for a in acls}
        return {"succeeded": acls, "failed": []}

    def delete_acls(self, filters: list) -> list:
        from kafka.errors import NoError

        answers = []
        for f in filters:
            matched = [b for b in self.bindings if b == self.key(f)]
            self.bindings -= set(matched)
            answers.append((f, matched, NoError))
        return answers

    def alter_client_quotas(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return {}

    def close(self) -> None:
        pass


def test_writing_the_roles_withdraws_the_services_former_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster set up by an earlier version keeps its ALL bindings until they are deleted: the
    embedded stack's and compose's kafka-access (apply_roles) and `vigil stack acls --apply` delete
    them once the new grants are in, and nothing else."""
    from vigil.infra import kafka_roles
    from vigil.infra.kafka_access import former_grants, to_acl

    monkeypatch.setattr(kafka_roles, "apply_quotas", lambda admin, quotas: [])
    former = {_Cluster.key(to_acl(g)) for g in former_grants(P, "hospital-a")}
    other = ("User:someone-else", "*", "ALL", "TOPIC", "vigil", "PREFIXED")
    cluster = _Cluster(former | {other})
    written = kafka_roles.apply_roles(cluster, {}, "hospital-a", no_authorizer="none")
    assert written == len(access_grants(P, "hospital-a"))
    assert not former & cluster.bindings and other in cluster.bindings
    assert cluster.bindings - {other} == {_Cluster.key(to_acl(g)) for g in access_grants(P, "hospital-a")}

    from vigil.cli import preflight
    from vigil.infra import connect

    cluster = _Cluster({_Cluster.key(to_acl(g)) for g in former_grants(P)})
    monkeypatch.setattr(preflight, "require_broker", lambda settings: "127.0.0.1:9092")
    monkeypatch.setattr(connect, "kafka_admin", lambda settings, **options: cluster)
    out = CliRunner().invoke(_cli(), ["stack", "acls", "--apply", "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output.strip().splitlines()[-1])
    assert summary["withdrawn"] == 2 and "ALL" not in {b[2] for b in cluster.bindings}
