"""The secure embedded stack's CA and broker certificate (a year) are issued again when either has
fewer than 30 days left: they were reused forever, and a year on no client could connect."""

from __future__ import annotations

import datetime as real_dt
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from vigil.infra.stack import tls


def _issued_days_ago(home: Path, days: int, monkeypatch: pytest.MonkeyPatch) -> tls.SecureMaterial:
    class Then:
        timedelta, UTC = real_dt.timedelta, real_dt.UTC

        class datetime:  # noqa: N801 - stands for the module's datetime class
            @staticmethod
            def now(tz: real_dt.tzinfo | None = None) -> real_dt.datetime:
                return real_dt.datetime.now(tz) - real_dt.timedelta(days=days)

    with monkeypatch.context() as m:
        m.setattr(tls, "dt", Then)
        return tls.ensure_secure_material(home)


def _ends(pem: Path) -> real_dt.datetime:
    return x509.load_pem_x509_certificates(pem.read_bytes())[0].not_valid_after_utc


@pytest.mark.parametrize("age_days", [400, 340])  # expired; 25 days left
def test_a_ca_and_broker_certificate_ending_within_30_days_are_issued_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, age_days: int
) -> None:
    old = _issued_days_ago(tmp_path, age_days, monkeypatch)
    old_ca = old.ca_file.read_bytes()
    new = tls.ensure_secure_material(tmp_path)
    soon = real_dt.datetime.now(real_dt.UTC) + real_dt.timedelta(days=300)
    assert _ends(new.broker_pem) > soon and _ends(new.ca_file) > soon and new.ca_file.read_bytes() != old_ca
    ca = x509.load_pem_x509_certificate(new.ca_file.read_bytes())
    x509.load_pem_x509_certificates(new.broker_pem.read_bytes())[0].verify_directly_issued_by(ca)
    assert new.broker_password.get_secret_value() == old.broker_password.get_secret_value()  # passwords kept


def test_certificates_with_time_left_are_kept(tmp_path: Path) -> None:
    fresh = tls.ensure_secure_material(tmp_path)
    pem, ca = fresh.broker_pem.read_bytes(), fresh.ca_file.read_bytes()
    again = tls.ensure_secure_material(tmp_path)
    assert again.broker_pem.read_bytes() == pem and again.ca_file.read_bytes() == ca


@pytest.mark.parametrize("node_running", [True, False])
def test_a_secure_start_renews_only_when_no_broker_of_the_home_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, node_running: bool
) -> None:
    """``start_kafka``'s wiring: a running node keeps the certificate and CA it started with (its
    quorum would refuse a node restarted with new ones); a start with none running renews them."""
    from vigil.infra.ports import free_port_block
    from vigil.infra.settings import Settings
    from vigil.infra.stack import kafka
    from vigil.infra.stack.processes import started_at

    port = free_port_block(2)
    settings = Settings(
        home=tmp_path,
        kafka={"security_protocol": "SASL_SSL", "embedded_port": port, "embedded_controller_port": port + 1},
    )
    old = _issued_days_ago(tmp_path, 400, monkeypatch)
    old_ca, old_pem = old.ca_file.read_bytes(), old.broker_pem.read_bytes()
    monkeypatch.setattr(kafka, "ensure_kafka_jars", lambda paths: paths.libs)
    monkeypatch.setattr(kafka, "_prepare_node", lambda *args: ["java", "kafka.Kafka"])
    monkeypatch.setattr(kafka, "start_daemon", lambda *args: None)
    monkeypatch.setattr(kafka, "wait_kafka_ready", lambda *args: None)
    monkeypatch.setattr(kafka, "grant_roles", lambda *args: None)
    node = subprocess.Popen(["sleep", "30"])  # stands for node 0, running
    try:
        if node_running:
            pid_file = kafka.node_pid_file(settings, 0)
            pid_file.parent.mkdir(parents=True, exist_ok=True)
            pid_file.write_text(f"{node.pid} {started_at(node.pid)}")
        kafka.start_kafka(settings)
    finally:
        node.kill()
        node.wait()
    ca, pem = old.ca_file.read_bytes(), old.broker_pem.read_bytes()
    if node_running:
        assert ca == old_ca and pem == old_pem
    else:
        assert ca != old_ca and pem != old_pem and _ends(old.ca_file) > real_dt.datetime.now(real_dt.UTC)
