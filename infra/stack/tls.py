"""Local CA, broker certificate and SCRAM passwords for the secure embedded stack.

``vigil stack up --secure`` (or ``VIGIL_KAFKA__SECURITY_PROTOCOL=SASL_SSL``) calls
``ensure_secure_material(home)``: a CA (``<home>/tls/ca.pem``), a broker certificate for
127.0.0.1/localhost signed by it (``<home>/tls/broker.pem``, key + chain, PEM, read by Kafka's
``ssl.keystore.type=PEM``; every node of an embedded cluster shares it), and random passwords for
the Kafka SCRAM users under ``<home>/secrets`` (``infra/secrets.py``: 0600, reused, never logged).
The CA key never leaves ``<home>/tls``. A start with no broker running issues the CA and the broker
certificate again when either has fewer than ``RENEW_DAYS`` left.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from vigil.infra.secrets import KAFKA_BROKER_PASSWORD, KAFKA_CLIENT_PASSWORD, ensure_secret, private_dir, write_private

CERT_DAYS = 365
# ``stack up --secure`` issues the CA and the broker certificate again when either has fewer days
# left (or has expired): they were kept forever, and a year on no client could connect
RENEW_DAYS = 30
LOOPBACK_NAMES = ("localhost", "127.0.0.1")  # what the embedded stack's broker certificate names


@dataclass(frozen=True)
class SecureMaterial:
    ca_file: Path
    broker_pem: Path
    kafka_password: SecretStr
    broker_password: SecretStr


def issue_ca(common_name: str = "Vigil local CA") -> tuple[Any, bytes]:
    """A fresh CA: its private key and its certificate (PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


def issue_server_pem(ca_key: Any, ca_pem: bytes, names: Sequence[str]) -> bytes:
    """A broker's key and certificate for ``names`` (host names or IP addresses; the first is its
    common name), signed by the CA, with the chain: one PEM for Kafka's ``ssl.keystore.type=PEM``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_cert = x509.load_pem_x509_certificate(ca_pem)
    # RSA for the broker: every JSSE and OpenSSL build negotiates it
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem + cert.public_bytes(serialization.Encoding.PEM) + ca_pem


def _general_name(name: str) -> Any:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def expires_soon(pem: bytes, now: dt.datetime, days: int = RENEW_DAYS) -> bool:
    """The first certificate in ``pem`` (a CA's; in a key + chain file, the server's own) ends within
    ``days`` of ``now``, or has ended; a file without a readable certificate counts as ended."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificates(pem)[0]
    except (ValueError, IndexError):
        return True
    return cert.not_valid_after_utc - now < dt.timedelta(days=days)


def _issue_ca(tls: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key, pem = issue_ca()
    write_private(
        tls / "ca.key",
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    (tls / "ca.pem").write_bytes(pem)


def _issue_broker_cert(tls: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    ca_key = serialization.load_pem_private_key((tls / "ca.key").read_bytes(), password=None)
    write_private(tls / "broker.pem", issue_server_pem(ca_key, (tls / "ca.pem").read_bytes(), LOOPBACK_NAMES))


def _renewal_due(tls: Path) -> bool:
    """The CA or the broker certificate ends within ``RENEW_DAYS`` (both are issued again: the
    broker's is signed by the CA)."""
    now = dt.datetime.now(dt.UTC)
    broker = (tls / "broker.pem").read_bytes() if (tls / "broker.pem").exists() else None
    return expires_soon((tls / "ca.pem").read_bytes(), now) or (broker is not None and expires_soon(broker, now))


def ensure_secure_material(home: Path, renew: bool = True) -> SecureMaterial:
    """Create what is missing (CA, broker cert, SCRAM passwords) and, with ``renew``, a CA and broker
    certificate about to end (``RENEW_DAYS``); reuse what exists. Idempotent. ``renew`` only while no
    broker of the home runs: a running node keeps the certificate and CA it started with, and its
    controller quorum would refuse a node restarted with new ones."""
    tls = private_dir(home / "tls")
    if not (tls / "ca.pem").exists() or not (tls / "ca.key").exists() or (renew and _renewal_due(tls)):
        _issue_ca(tls)
        (tls / "broker.pem").unlink(missing_ok=True)
    if not (tls / "broker.pem").exists():
        _issue_broker_cert(tls)
    return SecureMaterial(
        ca_file=tls / "ca.pem",
        broker_pem=tls / "broker.pem",
        kafka_password=ensure_secret(home, KAFKA_CLIENT_PASSWORD),
        broker_password=ensure_secret(home, KAFKA_BROKER_PASSWORD),
    )
