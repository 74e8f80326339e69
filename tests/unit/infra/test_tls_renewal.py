"""The secure embedded stack's CA and broker certificate (a year) are issued again when either has
fewer than 30 days left: they were reused forever, and a year on no client could connect."""

from __future__ import annotations

import datetime as real_dt
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


def test_certificates_with_time_left_are_kept_and_none_renewed_under_running_brokers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fresh = tls.ensure_secure_material(tmp_path)
    pem = fresh.broker_pem.read_bytes()
    assert tls.ensure_secure_material(tmp_path).broker_pem.read_bytes() == pem
    old = _issued_days_ago(tmp_path / "other", 400, monkeypatch)
    kept = old.broker_pem.read_bytes()
    # a running node keeps what it started with: renewed only at a start with no broker running
    assert tls.ensure_secure_material(tmp_path / "other", renew=False).broker_pem.read_bytes() == kept
