"""Local CA, broker certificate and generated secrets for the secure embedded stack.

``vigil stack up --secure`` (or ``VIGIL_KAFKA__SECURITY_PROTOCOL=SASL_SSL``) calls
``ensure_secure_material(home)``: a CA (``<home>/tls/ca.pem``), a broker certificate for
127.0.0.1/localhost signed by it (``<home>/tls/broker.pem``, key + chain, PEM, read by Kafka's
``ssl.keystore.type=PEM``), and random passwords for the Kafka SCRAM users and the Redis ACL user
under ``<home>/secrets``. Every secret file is created 0600 (directories 0700), reused on the next
start, and never logged. The CA key never leaves ``<home>/tls``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from vigil.infra.settings import Settings

KAFKA_CLIENT_USER = "vigil"  # what workers, producers and readers authenticate as
KAFKA_BROKER_USER = "vigil-broker"  # the broker to itself (inter-broker listener)
REDIS_USER = "vigil"  # Redis ACL user of the workers: only vigil:* keys, no dangerous commands
SCRAM_MECHANISM = "SCRAM-SHA-512"
CERT_DAYS = 365


@dataclass(frozen=True)
class SecureMaterial:
    ca_file: Path
    broker_pem: Path
    kafka_password: SecretStr
    broker_password: SecretStr
    redis_password: SecretStr
    redis_admin_password: SecretStr  # Redis ``default`` user: operators only, never workers


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Create (or replace) a file readable by its owner only, with no window at a wider mode."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _secret(path: Path) -> SecretStr:
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32).encode())
    return SecretStr(path.read_text().strip())


def _issue_ca(tls: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Vigil local CA")])
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
    write_private(
        tls / "ca.key",
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    (tls / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _issue_broker_cert(tls: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key((tls / "ca.key").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate((tls / "ca.pem").read_bytes())
    # RSA for the broker: every JSSE and OpenSSL build negotiates it
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pem += cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    write_private(tls / "broker.pem", pem)


def ensure_secure_material(home: Path) -> SecureMaterial:
    """Create what is missing (CA, broker cert, passwords); reuse what exists. Idempotent."""
    tls = _private_dir(home / "tls")
    secret_dir = _private_dir(home / "secrets")
    if not (tls / "ca.pem").exists() or not (tls / "ca.key").exists():
        _issue_ca(tls)
        (tls / "broker.pem").unlink(missing_ok=True)
    if not (tls / "broker.pem").exists():
        _issue_broker_cert(tls)
    return SecureMaterial(
        ca_file=tls / "ca.pem",
        broker_pem=tls / "broker.pem",
        kafka_password=_secret(secret_dir / "kafka-vigil.password"),
        broker_password=_secret(secret_dir / "kafka-broker.password"),
        redis_password=_secret(secret_dir / "redis-vigil.password"),
        redis_admin_password=_secret(secret_dir / "redis-admin.password"),
    )


def is_secure(settings: Settings) -> bool:
    return settings.kafka.security_protocol == "SASL_SSL"


def with_stack_credentials(settings: Settings) -> Settings:
    """Fill missing client credentials from the secrets a secure embedded stack generated in
    ``settings.home`` (explicit settings win; nothing is generated here, and a home without a
    secure stack leaves the settings as they are)."""
    secret_dir = settings.home / "secrets"
    if not is_secure(settings) or not (secret_dir / "kafka-vigil.password").exists():
        return settings
    k, r = settings.kafka, settings.redis
    kafka = k.model_copy(
        update={
            "sasl_mechanism": k.sasl_mechanism or SCRAM_MECHANISM,
            "sasl_username": k.sasl_username or KAFKA_CLIENT_USER,
            "sasl_password": k.sasl_password or _secret(secret_dir / "kafka-vigil.password"),
            "ssl_cafile": k.ssl_cafile or str(settings.home / "tls" / "ca.pem"),
        }
    )
    redis = r.model_copy(
        update={
            "username": r.username or REDIS_USER,
            "password": r.password or _secret(secret_dir / "redis-vigil.password"),
        }
    )
    return settings.model_copy(update={"kafka": kafka, "redis": redis})


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """kafka-python keyword arguments for the configured security protocol ({} for PLAINTEXT)."""
    k = settings.kafka
    if k.security_protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": k.security_protocol}
    if k.security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_cafile"] = k.ssl_cafile
        options["ssl_check_hostname"] = True
    if k.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = k.sasl_mechanism or SCRAM_MECHANISM
        options["sasl_plain_username"] = k.sasl_username
        options["sasl_plain_password"] = k.sasl_password.get_secret_value() if k.sasl_password else None
    return options
