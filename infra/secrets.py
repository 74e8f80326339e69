"""Generated secrets of the embedded stack, in ``<home>/secrets`` (directory 0700, files 0600).

Each secret is created once (``secrets.token_urlsafe(32)``), reused on every later start, and
read only by the connection factory (``infra.connect``) and the stack that starts the servers.
A value never reaches a log line, an environment variable or a command line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from vigil.infra.settings import DEFAULT_LOG_HASH_KEY, Settings
from vigil.schemas.errors import UserError

KAFKA_CLIENT_USER = "vigil"  # the service: workers, vigil serve, vigil mllp, the CLI
KAFKA_BROKER_USER = "vigil-broker"  # the brokers to each other (inter-broker listener); a super user
KAFKA_INGEST_USER = "vigil-ingest"  # EHR integrations: write the inbound topics only (infra.kafka_access)
KAFKA_SUBSCRIBER_USER = "vigil-subscriber"  # monitoring systems: read alerts and scores, write acks
REDIS_USER = "vigil"  # Redis ACL user of every Vigil client: only vigil:* keys, no dangerous commands

KAFKA_CLIENT_PASSWORD = "kafka-vigil.password"
KAFKA_BROKER_PASSWORD = "kafka-broker.password"
KAFKA_INGEST_PASSWORD = "kafka-ingest.password"
KAFKA_SUBSCRIBER_PASSWORD = "kafka-subscriber.password"
# the password file of each client user of the embedded secure stack
KAFKA_USER_PASSWORDS = {
    KAFKA_CLIENT_USER: KAFKA_CLIENT_PASSWORD,
    KAFKA_INGEST_USER: KAFKA_INGEST_PASSWORD,
    KAFKA_SUBSCRIBER_USER: KAFKA_SUBSCRIBER_PASSWORD,
}
# a password an operator gives a server's config file or command line (docker-compose's Kafka and
# Redis): at least this long, of letters, digits and the symbols that config's parser reads as text
MIN_PASSWORD_CHARS = 16
REDIS_PASSWORD = "redis-vigil.password"
REDIS_ADMIN_PASSWORD = "redis-admin.password"  # Redis ``default`` user: operators and tests only


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Create (or replace) a file readable by its owner only, with no window at a wider mode."""
    write_private_together({path: data})


def write_private_together(files: Mapping[Path, bytes], modes: Mapping[Path, int] | None = None) -> None:
    """Create (or replace) files that must change together (a CA and the certificates it signed):
    each is written to ``<name>.tmp`` at 0600 (or given its mode in ``modes`` before it is in place),
    and none replaces its file until every one is written and no destination is a folder (Docker makes
    a missing bind-mount source one, and no rename replaces it): a failure halfway left new server
    certificates beside the CA nobody's trust had moved to. On any failure every tmp is removed: it
    holds the secret."""
    written: dict[Path, Path] = {}
    try:
        for path, data in files.items():
            tmp = path.with_name(path.name + ".tmp")
            tmp.unlink(missing_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            written[path] = tmp
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            if modes and path in modes:
                tmp.chmod(modes[path])
        for path, tmp in written.items():
            if path.is_dir() and not path.is_symlink():  # as os.replace would say, before any file moves
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(tmp), None, str(path))
        for path, tmp in list(written.items()):
            os.replace(tmp, path)
            del written[path]  # in place: no tmp of ours left to remove
    finally:
        for tmp in written.values():
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)


def password_problem(password: str, symbols: str) -> str | None:
    """Why ``password`` cannot be written into a server's config (None when it can): it needs at
    least ``MIN_PASSWORD_CHARS`` letters, digits or ``symbols``, and nothing else."""
    if re.fullmatch(rf"[A-Za-z0-9{re.escape(symbols)}]{{{MIN_PASSWORD_CHARS},}}", password):
        return None
    return f"needs at least {MIN_PASSWORD_CHARS} letters, digits or {symbols} (e.g. $(openssl rand -hex 24))"


def secret_dir(home: Path) -> Path:
    return home / "secrets"


def ensure_secret(home: Path, name: str) -> SecretStr:
    """The secret ``name`` of this home, generated on first use."""
    path = private_dir(secret_dir(home)) / name
    if not path.exists():
        write_private(path, secrets.token_urlsafe(32).encode())
    return SecretStr(path.read_text().strip())


def read_secret(home: Path, name: str) -> SecretStr | None:
    """The secret ``name`` if the stack of this home generated it (nothing is created here)."""
    path = secret_dir(home) / name
    try:
        return SecretStr(path.read_text().strip())
    except FileNotFoundError:
        return None


class DefaultSecretError(UserError):
    """A public default secret where a real one is required."""


def require_real_log_key(settings: Settings, command: str) -> None:
    """``vigil worker`` and ``vigil serve`` against an external broker (``VIGIL_KAFKA__BOOTSTRAP``)
    must not key patient hashes with the public default: anyone could recompute them."""
    if settings.kafka.bootstrap is None or settings.log_hash_key.get_secret_value() != DEFAULT_LOG_HASH_KEY:
        return
    raise DefaultSecretError(
        f"`vigil {command}` refuses the default VIGIL_LOG_HASH_KEY against the external broker "
        f"{settings.kafka.bootstrap}: set a secret, e.g. VIGIL_LOG_HASH_KEY=$(openssl rand -base64 32) "
        "(docs/security.md)"
    )
