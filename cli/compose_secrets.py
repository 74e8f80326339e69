"""``vigil stack compose-secrets``: docker-compose's passwords, keys and tokens as files, which compose
mounts under /run/secrets and Vigil reads through ``*_FILE`` variables (infra/secret_files.py): no
secret in a container's environment, where ``docker inspect`` shows it."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Final, NamedTuple

import typer

from vigil.cli.jsonout import emit_json
from vigil.cli.redis_users import PASSWORD_SYMBOLS as REDIS
from vigil.cli.redis_users import users_file
from vigil.infra.kafka_roles import SCRAM_PASSWORD_SYMBOLS as SCRAM
from vigil.infra.secret_files import env_secret
from vigil.infra.secrets import REDIS_USER, password_problem, write_private
from vigil.infra.stack.redis_server import client_acl
from vigil.schemas.errors import UserError

VIGIL_UID: Final = "10001"  # Vigil's image (Dockerfile's USER)
KAFKA_GID: Final = "1000"  # apache/kafka's appuser group
REDIS_UID: Final = "999"  # the redis image's redis


class Secret(NamedTuple):
    owner: str  # uid[:gid] compose's containers read it as
    mode: int
    former: str  # the variable docker-compose.yml took it from before 6 December 2026
    what: str
    symbols: str | None = None  # a password: besides letters and digits, what its server's config reads as text


# compose's secret name (and file name) -> who reads it. A new value is 48 hex digits, which both
# servers' configs read as text
SECRETS: Final = {
    "kafka_admin_password": Secret(
        f"{VIGIL_UID}:{KAFKA_GID}",
        0o440,
        "VIGIL_KAFKA_ADMIN_PASSWORD",
        "Kafka's super user vigil-broker: the Kafka nodes format their volumes with it, kafka-access signs in with it",
        SCRAM,
    ),
    "kafka_password": Secret(VIGIL_UID, 0o600, "VIGIL_KAFKA_PASSWORD", "Kafka user vigil: Vigil's containers", SCRAM),
    "kafka_ingest_password": Secret(
        VIGIL_UID,
        0o600,
        "VIGIL_KAFKA_INGEST_PASSWORD",
        "Kafka user vigil-ingest: give it to the EHR integrations",
        SCRAM,
    ),
    "kafka_subscriber_password": Secret(
        VIGIL_UID, 0o600, "VIGIL_KAFKA_SUBSCRIBER_PASSWORD", "Kafka user vigil-subscriber: give it to the pagers", SCRAM
    ),
    "redis_password": Secret(VIGIL_UID, 0o600, "VIGIL_REDIS_PASSWORD", "Redis user vigil: Vigil's containers", REDIS),
    "log_hash_key": Secret(
        VIGIL_UID, 0o600, "VIGIL_LOG_HASH_KEY", "keys patient-id hashes in logs and Redis keys: keep it once used"
    ),
    "api_token": Secret(VIGIL_UID, 0o600, "VIGIL_API_TOKEN", "POST /fhir's bearer token: give it to the FHIR server"),
    "session_secret": Secret(VIGIL_UID, 0o600, "VIGIL_WEB__SESSION_SECRET", "the dashboard's session cookies"),
}
REDIS_USERS: Final = "redis-users.conf"  # from redis_password: Redis' users (`vigil stack redis-users`)
KAFKA_ADMIN: Final = "kafka_admin_password"


def _admin_password_problem(out: Path) -> str | None:
    """Why a new kafka_admin_password must not be generated into ``out`` (None when it may): the
    folder holds the other secrets, so the Kafka volumes were most likely formatted with the old one.
    kafka-start.sh gives vigil-broker its password only when it formats a volume, so a new file would
    lock kafka-access and every node's healthcheck out while this command reported success."""
    if (out / KAFKA_ADMIN).exists() or env_secret(os.environ, SECRETS[KAFKA_ADMIN].former):
        return None
    others = [name for name in SECRETS if name != KAFKA_ADMIN and (out / name).exists()]
    if not others:
        return None
    return (
        f"{out / KAFKA_ADMIN} is missing, but {out} holds the other secrets ({others[0]}, ...): the Kafka "
        "volumes keep the vigil-broker password they were formatted with, so a new one would lock kafka-access "
        "and the healthchecks out. Put the old file back (or set VIGIL_KAFKA_ADMIN_PASSWORD to the old "
        "password); to change it, set vigil-broker's password on the cluster first (kafka-configs.sh --alter "
        "--entity-type users --entity-name vigil-broker --add-config 'SCRAM-SHA-512=[password=NEW]'), then "
        "rerun with VIGIL_KAFKA_ADMIN_PASSWORD=NEW and restart the Kafka nodes"
    )


# the file names compose takes a project's compose file by (`docker compose` without -f)
COMPOSE_FILES: Final = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
_DOTENV_LINE: Final = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*?)\s*$")


def _compose_dotenvs(out: Path) -> list[Path]:
    """The ``.env`` files compose would read for the project whose secrets go into ``out``: the
    current folder's (where `docker compose` runs), and the one beside the compose file in a folder
    above ``out`` (``--out /srv/vigil/deploy/secrets`` from elsewhere: compose reads .env from its
    project folder, the compose file's)."""
    candidates = [Path(".env")]
    project = next((d for d in out.resolve().parents if any((d / f).is_file() for f in COMPOSE_FILES)), None)
    if project is not None:
        candidates.append(project / ".env")
    found: dict[Path, Path] = {}  # each file once: run from the project folder, both are the same
    for dotenv in candidates:
        if dotenv.is_file():
            found.setdefault(dotenv.resolve(), dotenv)
    return list(found.values())


def _dotenv_names(text: str) -> set[str]:
    """The variables a compose ``.env`` sets to a value (``NAME=value``, ``export NAME=value``;
    ``NAME=`` and ``NAME=""`` set none); the values themselves are never kept."""
    names: set[str] = set()
    for line in text.splitlines():
        if (m := _DOTENV_LINE.match(line)) and _dotenv_value(m.group(2)):
            names.add(m.group(1))
    return names


def _dotenv_value(raw: str) -> str:
    """A .env value (all after ``=``) as compose and ``sh`` read it: within its quotes, else up to a
    ``#`` after whitespace, a comment (``NAME="" # moved`` and ``NAME= # none`` set it empty: no
    secret there; ``NAME=#Xk9`` is the secret ``#Xk9``)."""
    value = raw.lstrip()
    if value[:1] in ("'", '"') and (end := value.find(value[0], 1)) > 0:
        return value[1:end]
    if value[:1] == "#" and value is not raw:
        return ""
    return re.split(r"\s#", value, maxsplit=1)[0].strip()


def _dotenv_problem(out: Path, environ: Mapping[str, str]) -> str | None:
    """Why the secrets missing from ``out`` must not be generated yet (None when they may): a
    deployment from before 6 December 2026 kept them, as its docs allowed, in compose's .env, which
    compose read and this command does not. Generated anew, the Kafka volumes keep the old admin
    password (every healthcheck fails) and a new log hash key strands every patient's Redis state,
    while the command reported success."""
    for dotenv in _compose_dotenvs(out):
        named = _dotenv_names(dotenv.read_text(encoding="utf-8", errors="replace"))
        unset = [
            variable
            for name, s in SECRETS.items()
            if not (out / name).exists() and not env_secret(environ, s.former)
            for variable in (s.former, f"{s.former}_FILE")
            if variable in named
        ]
        if unset:
            source = str(dotenv) if dotenv.is_absolute() else f"./{dotenv}"  # `. .env` searches PATH in sh
            return (
                f"{dotenv} sets {', '.join(unset)}, which this command reads from the environment only "
                f"(it would generate new values): export the variables in .env first: set -a; . {source}; "
                f"set +a, then run it again (and remove them from {dotenv} once the files are written)"
            )
    return None


def _users_file_stale(users: Path, redis_password: Path, rewritten: str | None) -> bytes | None:
    """What redis-users.conf must hold when it is not that already (None: keep it): the users file
    Redis reads must carry the password Vigil's containers send, or every container is locked out of
    Redis. ``rewritten``: redis_password's value when this run wrote it. Only the ``vigil`` user's line
    is compared and replaced, the other lines kept: compared whole, a file with one line the operator
    added (an exporter's user) was rewritten by a rerun, which is to change nothing, and that user lost.
    A pair that this user may not read (each chowned to its container's user) was not changed by this
    run: kept."""
    try:
        password = rewritten if rewritten is not None else redis_password.read_text(encoding="utf-8").strip()
    except PermissionError:
        if users.exists():
            return None
        raise
    if not users.exists():
        return users_file(password)
    try:
        current = users.read_bytes().decode("utf-8", "surrogateescape").splitlines()
    except PermissionError:
        return None if rewritten is None else users_file(password)
    ours = client_acl(password)
    if rewritten is None and [line.strip() for line in current if _is_vigil_user(line)] == [ours]:
        return None
    lines: list[str] = []
    for line in current:  # the vigil user's line where it was (once), every other line as it was
        if not _is_vigil_user(line):
            lines.append(line)
        elif ours not in lines:
            lines.append(ours)
    if ours not in lines:
        lines.append(ours)
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


def _is_vigil_user(line: str) -> bool:
    """A Redis config line that defines Vigil's ACL user."""
    return line.split()[:2] == ["user", REDIS_USER]


def _value(name: str, secret: Secret) -> tuple[str, str]:
    """(value, where from): a former variable's value (the Kafka volume was formatted with the admin
    password, Redis' state is keyed with the log key), else a new one."""
    former = env_secret(os.environ, secret.former)
    if not former:
        return secrets.token_hex(24), "generated"
    if secret.symbols and (problem := password_problem(former, secret.symbols)) is not None:
        raise UserError(f"{secret.former} {problem}: unset it to have {name} generated")
    return former, secret.former


def compose_secrets(
    out: Path = typer.Option(Path("deploy/secrets"), "--out", help="the folder to write compose's secret files into"),
    json_out: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """Write each of docker-compose's secrets that the folder lacks into a file of its own, readable by
    its owner alone: the Kafka users' passwords (vigil-broker, vigil, vigil-ingest, vigil-subscriber),
    Redis' password and its users file (redis-users.conf), the log hash key, POST /fhir's token and the
    dashboard's session secret. A file already there is kept (a rerun changes nothing; delete one to
    replace it: a new redis_password rewrites the vigil user of redis-users.conf too, keeping its other
    lines). A secret missing from the folder takes the value of the variable docker-compose.yml read
    before (VIGIL_KAFKA_ADMIN_PASSWORD, VIGIL_LOG_HASH_KEY, ...) when that is set, else a new random
    one; but such a variable that compose's .env sets (the current folder's, or the compose file's
    above --out) and the environment does not stops the command before it writes anything, and a new
    kafka_admin_password beside the other secrets is refused (the Kafka volumes keep the old one).
    Then give each file its container's user, as the last line printed says."""
    if not out.is_dir():
        raise UserError(f"{out} is not a folder: create it (mkdir -p {out}), or give --out another path")
    if (problem := _dotenv_problem(out, os.environ)) is not None:
        raise UserError(problem)
    if (problem := _admin_password_problem(out)) is not None:
        raise UserError(problem)
    written: list[str] = []
    kept: list[str] = []
    sources: dict[str, str] = {}
    values: dict[str, str] = {}
    for name, secret in SECRETS.items():
        path = out / name
        if path.exists():
            kept.append(name)
            continue
        values[name], sources[name] = _value(name, secret)
        write_private(path, values[name].encode())
        path.chmod(secret.mode)
        written.append(name)
    users = out / REDIS_USERS
    wanted = _users_file_stale(users, out / "redis_password", values.get("redis_password"))
    if wanted is None:
        kept.append(REDIS_USERS)
    else:
        write_private(users, wanted)
        written.append(REDIS_USERS)
    owners = {name: secret.owner for name, secret in SECRETS.items()} | {REDIS_USERS: REDIS_UID}
    chown = " && ".join(
        f"sudo chown {owner} {' '.join(str(out / n) for n in names)}"
        for owner in dict.fromkeys(owners.values())
        if (names := [n for n in written if owners[n] == owner])
    )
    typer.echo(
        f"wrote {', '.join(written) or 'nothing'} into {out}"
        + (f" (kept {', '.join(kept)})" if kept else "")
        + (f"; next: {chown}" if chown else "")
    )
    if json_out:
        about = {name: secret.what for name, secret in SECRETS.items()}
        emit_json(
            {"folder": str(out), "written": written, "kept": kept, "sources": sources, "owners": owners, "about": about}
        )
