"""Sign-in for the dashboard: argon2id password hashes, signed session cookies, CSRF tokens, roles.

Users come from ``settings.users_file`` (JSON or TOML) and/or the ``VIGIL_USERS`` environment variable
(JSON). Both hold ``{"users": [{"username": ..., "password_hash": "$argon2id$...", "role": ...}]}``
(a bare list is accepted too). Roles: ``clinician`` may acknowledge and resolve, ``viewer`` reads.

Session: an itsdangerous-signed, timestamped cookie (HttpOnly, SameSite=Strict, Secure when asked)
carrying the user, role and a per-session CSRF token (synchronizer pattern: the page reads the token
from ``/api/state`` and sends it in ``X-CSRF-Token`` on every POST). The sign-in form has its own
double-submit token (a signed cookie + a form field) against login CSRF.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from vigil.schemas.errors import VigilError

Role = Literal["clinician", "viewer"]
SESSION_COOKIE = "vigil_session"
LOGIN_CSRF_COOKIE = "vigil_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE_S = 12 * 3600  # one shift
USERS_ENV = "VIGIL_USERS"

_hasher = PasswordHasher()  # argon2id, library defaults (RFC 9106 second recommended option)
# Verified when the user is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._@-]+$")
    password_hash: str = Field(min_length=20)
    role: Role = "viewer"


class UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[User] = Field(default_factory=list)


_USERS = TypeAdapter(UsersFile | list[User])


class AuthError(VigilError):
    """Bad users file or configuration."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _parse_users(text: str, toml: bool) -> list[User]:
    data: Any = tomllib.loads(text) if toml else json.loads(text)
    parsed = _USERS.validate_python(data)
    return parsed.users if isinstance(parsed, UsersFile) else parsed


def load_users(users_file: Path | None, env: Mapping[str, str] | None = None) -> dict[str, User]:
    env = os.environ if env is None else env
    users: dict[str, User] = {}
    if users_file is not None and users_file.exists():
        for user in _parse_users(users_file.read_text(), users_file.suffix.lower() == ".toml"):
            users[user.username] = user
    if env.get(USERS_ENV):
        for user in _parse_users(env[USERS_ENV], toml=False):
            users[user.username] = user
    return users


def add_user(users_file: Path, username: str, password: str, role: Role) -> User:
    """Create or replace one user in a JSON users file (written with mode 0600)."""
    if users_file.suffix.lower() == ".toml":
        raise AuthError("add-user writes JSON users files; convert the TOML file or use a .json path")
    existing = list(load_users(users_file, env={}).values()) if users_file.exists() else []
    user = User(username=username, password_hash=hash_password(password), role=role)
    users = [u for u in existing if u.username != username] + [user]
    users_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = users_file.with_suffix(users_file.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(UsersFile(users=users).model_dump(), out, indent=2)
        out.write("\n")
    tmp.replace(users_file)
    return user


@dataclass(frozen=True)
class Session:
    username: str
    role: Role
    csrf: str

    @property
    def may_acknowledge(self) -> bool:
        return self.role == "clinician"


class Authenticator:
    def __init__(self, users: dict[str, User], secret: str | None = None, cookie_secure: bool = False) -> None:
        self.users = users
        # a random secret per process unless one is given: sessions end when the server restarts
        secret = secret or secrets.token_urlsafe(32)
        self._sessions = URLSafeTimedSerializer(secret, salt="vigil-session")
        self._login = URLSafeTimedSerializer(secret, salt="vigil-login-csrf")
        self.cookie_secure = cookie_secure

    def verify(self, username: str, password: str) -> User | None:
        user = self.users.get(username)
        try:
            _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return user

    def issue(self, user: User) -> tuple[str, Session]:
        session = Session(user.username, user.role, secrets.token_urlsafe(32))
        token = self._sessions.dumps({"u": session.username, "r": session.role, "c": session.csrf})
        return token, session

    def session(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            data = self._sessions.loads(cookie, max_age=SESSION_MAX_AGE_S)
        except (BadSignature, SignatureExpired):
            return None
        user = self.users.get(data.get("u", ""))
        if user is None:  # removed from the users file since sign-in
            return None
        return Session(user.username, user.role, str(data.get("c", "")))

    def login_csrf(self) -> tuple[str, str]:
        """(form token, signed cookie value) for the sign-in form (double submit)."""
        token = secrets.token_urlsafe(24)
        return token, self._login.dumps(token)

    def check_login_csrf(self, cookie: str | None, form_token: str | None) -> bool:
        if not cookie or not form_token:
            return False
        try:
            expected = self._login.loads(cookie, max_age=3600)
        except (BadSignature, SignatureExpired):
            return False
        return hmac.compare_digest(str(expected), form_token)

    @staticmethod
    def check_csrf(session: Session, header: str | None) -> bool:
        return bool(header) and hmac.compare_digest(session.csrf, header or "")

    def cookie_args(self) -> dict[str, Any]:
        return {"httponly": True, "samesite": "strict", "secure": self.cookie_secure, "path": "/"}


def roles() -> Iterable[str]:
    return ("clinician", "viewer")
