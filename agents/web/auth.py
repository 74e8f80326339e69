"""Sign-in for the dashboard: argon2id password hashes, server-side sessions, CSRF tokens, roles.

Users come from ``settings.users_file`` (JSON or TOML) and/or the ``VIGIL_USERS`` environment variable
(JSON). Both hold ``{"users": [{"username": ..., "password_hash": "$argon2id$...", "role": ...}]}``
(a bare list is accepted too). Roles: ``clinician`` may acknowledge and resolve, ``viewer`` reads.
A users file is re-read when it changes (``UserDirectory``): removing a user or changing a password
ends that user's sessions at their next request; a role change applies at once. An entry the re-read
refuses (a password in clear, a name given twice, a field that is not valid) is left out alone and
logged with its user's name: that user cannot sign in, the rest of the file applies.

Session: a record in the session store (``agents.web.sessions``: Redis, shared by replicas) holding
the user, a per-session CSRF token (synchronizer pattern: the page reads it from ``/api/state`` and
sends it in ``X-CSRF-Token`` on every POST) and a fingerprint of the password hash. The cookie
(HttpOnly, SameSite=Strict, Secure when asked) carries only the session id, Fernet-encrypted. Sign-out
deletes the record. The sign-in form has its own double-submit token (an encrypted cookie + a form
field) against login CSRF. Sign-in is throttled per account at an address, per account and per
address, and argon2 runs at most ``settings.web.login_hash_concurrency`` at a time
(``agents.web.throttle``).
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import threading
import time
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from vigil.agents.web.sessions import (
    MemorySessionStore,
    RedisSessionStore,
    SessionCookies,
    SessionRecord,
    SessionStore,
    password_fingerprint,
)
from vigil.agents.web.throttle import HashingBusy, HashingGate, LoginThrottle
from vigil.infra.logging import get_logger
from vigil.infra.secrets import write_private
from vigil.infra.settings import Settings
from vigil.schemas.errors import UserError

Role = Literal["clinician", "viewer"]
SESSION_COOKIE = "vigil_session"
LOGIN_CSRF_COOKIE = "vigil_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_MAX_AGE_S = 12 * 3600  # one shift (default of settings.web.session_max_age_s)
USERS_ENV = "VIGIL_USERS"
USERS_RECHECK_S = 1.0  # how often the users file's modification time is looked at

log = get_logger("vigil.web.auth")

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


class AuthError(UserError, ValueError):
    """Bad users file or configuration: one line for the CLI; a ValueError to the dashboard's reload,
    which keeps the last good users when the file is not a users file at all (half written)."""


class _UsersEntries(BaseModel):
    """A users file's shape, its entries not yet checked (a reload checks each on its own)."""

    model_config = ConfigDict(extra="forbid")

    users: list[Any] = Field(default_factory=list)


_ENTRIES = TypeAdapter(_UsersEntries | list[Any])


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def same_secret(expected: str, given: str) -> bool:
    """Constant-time comparison of a token someone sent with the one expected. As UTF-8 bytes:
    ``hmac.compare_digest`` refuses a ``str`` with a non-ASCII character (a TypeError, answered 500),
    while such a token is only a wrong one."""
    return hmac.compare_digest(expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass"))


_USERS_SHAPE = '{"users": [{"username": ..., "password_hash": ..., "role": ...}]}'


def _users_document(text: str, toml: bool, source: str, shape: TypeAdapter[Any]) -> Any:
    """``text`` (JSON or TOML) read as ``shape``; a ``AuthError`` saying what a users file holds when it
    is not one."""
    try:
        data: Any = tomllib.loads(text) if toml else json.loads(text)
        return shape.validate_python(data)
    except (ValueError, tomllib.TOMLDecodeError) as exc:  # JSON's and pydantic's errors are ValueErrors
        what = _first_error(exc) if isinstance(exc, ValidationError) else str(exc).splitlines()[0]
        raise AuthError(f"{source} is not a users file ({what}): it holds {_USERS_SHAPE}; fix or move it") from None


def _parse_users(text: str, toml: bool, source: str, replacing: str | None = None) -> list[User]:
    parsed = _users_document(text, toml, source, _USERS)
    users = parsed.users if isinstance(parsed, UsersFile) else parsed
    _check_users([u for u in users if u.username != replacing], source)
    return users


def _parse_users_apart(text: str, toml: bool, source: str) -> tuple[list[User], set[str]]:
    """A reload's reading: the users whose entries hold, and the names of those refused, each entry on
    its own. Refusing the whole file for one entry kept the last good users: a hand edit that removed
    one user and left another's entry wrong left both able to sign in. Raises only when the text is
    not a users file at all (a half-written file: the reload keeps the last good users)."""
    parsed = _users_document(text, toml, source, _ENTRIES)
    entries = parsed.users if isinstance(parsed, _UsersEntries) else parsed
    users: list[User] = []
    refused: set[str] = set()
    for number, entry in enumerate(entries, 1):
        try:
            users.append(User.model_validate(entry))
        except ValidationError as exc:
            name = entry.get("username") if isinstance(entry, dict) else None
            if isinstance(name, str):
                refused.add(name)  # every entry of that name: a valid one beside it is not the user meant
            shown = name[:64] if isinstance(name, str) else f"entry {number}"  # staff accounts, no PHI
            log.warning("users_entry_refused", source=source, user=shown, reason=_first_error(exc))
    for username, why in _refusals(users, source).items():
        refused.add(username)
        log.warning("users_entry_refused", source=source, user=username, reason=why)
    return [u for u in users if u.username not in refused], refused


def _refusals(users: list[User], source: str) -> dict[str, str]:
    """The users whose entries parse but would sign in wrongly, each with one line saying why: a name
    given twice (the last would silently replace the first, its role with it) and a password_hash
    that is not an argon2 hash (a password pasted in clear: readable by whoever reads the file, and
    never verified)."""
    refused: dict[str, str] = {}
    seen: set[str] = set()
    for user in users:
        if user.username in seen:
            refused.setdefault(
                user.username, f"{source} names the user {user.username} twice: keep one entry for {user.username}"
            )
        seen.add(user.username)
    for user in users:
        if not user.password_hash.startswith("$argon2"):
            refused.setdefault(
                user.username,
                f"{source}: the password_hash of user {user.username} is not an argon2 hash ($argon2id$...): "
                f"set the password with `vigil users add {user.username}`",
            )
    return refused


def _check_users(users: list[User], source: str) -> None:
    """Refuse the file for the first entry ``_refusals`` names (`vigil serve`'s start, `vigil users`).
    ``_parse_users`` leaves out the user that `vigil users add` or `remove` is about to replace: the
    remedy must not be refused."""
    if refused := _refusals(users, source):
        raise AuthError(next(iter(refused.values())))


def _read_users_file(users_file: Path) -> str:
    """The users file's text; one line naming the file when it is not UTF-8 (a file saved in a
    Windows code page), instead of a decoding error that names neither file nor remedy."""
    data = users_file.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AuthError(
            f"{users_file} is not UTF-8 text (byte {exc.start} cannot be read): save it as UTF-8; "
            f"it holds {_USERS_SHAPE}"
        ) from None


def _first_error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"] if not str(p).startswith(("UsersFile", "list[")))
    return f"{where}: {first['msg']}" if where else first["msg"]


def load_users(
    users_file: Path | None,
    env: Mapping[str, str] | None = None,
    *,
    replacing: str | None = None,
    apart: bool = False,
) -> dict[str, User]:
    """The users of the file and of ``VIGIL_USERS`` (which wins for a name in both). ``replacing``:
    a user about to be replaced or removed, whose entries are not checked (the file's only). ``apart``
    (a reload): an entry refused is left out and logged, with every entry of its user's name in either
    source, instead of the whole file refused."""
    env = os.environ if env is None else env
    users: dict[str, User] = {}
    refused: set[str] = set()

    def read(text: str, toml: bool, source: str, replacing: str | None = None) -> list[User]:
        if not apart:
            return _parse_users(text, toml, source, replacing)
        kept, refused_here = _parse_users_apart(text, toml, source)
        refused.update(refused_here)
        return kept

    if users_file is not None and users_file.exists():
        text = _read_users_file(users_file)
        for user in read(text, users_file.suffix.lower() == ".toml", str(users_file), replacing):
            users[user.username] = user
    if env.get(USERS_ENV):
        for user in read(env[USERS_ENV], toml=False, source=USERS_ENV):
            users[user.username] = user
    return {name: user for name, user in users.items() if name not in refused}


def add_user(users_file: Path, username: str, password: str, role: Role) -> User:
    """Create or replace one user in a JSON users file (written with mode 0600). Replacing a user's
    password ends their sessions (the running dashboards re-read the file)."""
    if users_file.suffix.lower() == ".toml":
        raise AuthError("add-user writes JSON users files; convert the TOML file or use a .json path")
    existing = list(load_users(users_file, env={}, replacing=username).values()) if users_file.exists() else []
    try:
        user = User(username=username, password_hash=hash_password(password), role=role)
    except ValidationError:
        raise AuthError(f"{username!r} is not a user name: 1 to 64 letters, digits and . _ @ -") from None
    _write_users(users_file, [u for u in existing if u.username != username] + [user])
    return user


def remove_user(users_file: Path, username: str) -> bool:
    """Remove one user from a JSON users file (their sessions end); False when there was none."""
    if users_file.suffix.lower() == ".toml":
        raise AuthError("remove-user writes JSON users files; edit the TOML file instead")
    existing = list(load_users(users_file, env={}, replacing=username).values()) if users_file.exists() else []
    kept = [u for u in existing if u.username != username]
    if len(kept) == len(existing):
        return False
    _write_users(users_file, kept)
    return True


def _write_users(users_file: Path, users: list[User]) -> None:
    """Replace the users file atomically (a dashboard re-reading it never sees half a file), at 0600
    from its first byte: the temp file beside it is created anew (``O_EXCL``), so a stale one left
    wider by a crash or another tool cannot pass its mode on to the users file."""
    users_file.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(UsersFile(users=users).model_dump(), indent=2) + "\n"
    write_private(users_file, text.encode("utf-8"))


class UserDirectory:
    """The users, re-read from the users file when it changes (size or modification time)."""

    def __init__(
        self, users_file: Path | None = None, env: Mapping[str, str] | None = None, fixed: dict[str, User] | None = None
    ) -> None:
        self.users_file, self._env = users_file, env
        self._users: dict[str, User] = dict(fixed) if fixed is not None else load_users(users_file, env)
        self._stamp = self._file_stamp()
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def fixed(cls, users: dict[str, User]) -> UserDirectory:
        return cls(None, {}, fixed=users)

    def _file_stamp(self) -> tuple[int, int] | None:
        if self.users_file is None:
            return None
        try:
            st = self.users_file.stat()
        except OSError:
            return (0, 0)  # removed: every user is gone
        return (st.st_mtime_ns, st.st_size)

    def current(self) -> dict[str, User]:
        if self.users_file is None or time.monotonic() - self._checked < USERS_RECHECK_S:
            return self._users
        with self._lock:
            self._checked = time.monotonic()
            stamp = self._file_stamp()
            if stamp != self._stamp:
                try:
                    self._users = load_users(self.users_file, self._env, apart=True)
                    log.info("users_reloaded", users=len(self._users))
                except PermissionError:
                    # a new file this process may not read (`vigil users` run as another user): the
                    # users read last are not served, the removed one among them; nobody of the file
                    # signs in until it is readable again (tried each second: the stamp stays the old one)
                    log.error("users_unreadable", error="PermissionError")
                    try:  # the users of VIGIL_USERS still stand: the file is what may not be trusted
                        self._users = load_users(None, self._env, apart=True)
                    except (ValueError, ValidationError):
                        self._users = {}
                    return self._users
                except (OSError, ValueError, ValidationError) as exc:  # half-written file: keep the last good one
                    log.warning("users_reload_failed", error=type(exc).__name__)
                    return self._users
                self._stamp = stamp
        return self._users


@dataclass(frozen=True)
class Session:
    username: str
    role: Role
    csrf: str

    @property
    def may_acknowledge(self) -> bool:
        return self.role == "clinician"


@dataclass(frozen=True)
class SignIn:
    """The outcome of one sign-in attempt."""

    user: User | None = None
    retry_after_s: float = 0.0  # > 0: throttled, answer 429 with Retry-After
    busy: bool = False  # too many password checks queued: answer 503


class Authenticator:
    def __init__(
        self,
        users: dict[str, User] | UserDirectory,
        secret: str | None = None,
        cookie_secure: bool = False,
        *,
        sessions: SessionStore | None = None,
        max_age_s: int = SESSION_MAX_AGE_S,
        throttle: LoginThrottle | None = None,
        gate: HashingGate | None = None,
    ) -> None:
        self.directory = users if isinstance(users, UserDirectory) else UserDirectory.fixed(users)
        # a random secret per process unless one is given: sessions end when the server restarts
        self.cookies = SessionCookies(secret or secrets.token_urlsafe(32), max_age_s)
        self.sessions: SessionStore = sessions if sessions is not None else MemorySessionStore()
        self.max_age_s = max_age_s
        self.throttle = throttle or LoginThrottle()
        self.gate = gate or HashingGate()
        self.cookie_secure = cookie_secure

    @property
    def users(self) -> dict[str, User]:
        return self.directory.current()

    def verify(self, username: str, password: str) -> User | None:
        """The argon2 check (~64 MiB, tens of ms): call through ``sign_in`` in a server."""
        user = self.users.get(username)
        try:
            _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return user

    def refuse_early(self, address: str | None) -> SignIn | None:
        """Before the form is even read: the address is backing off, or password checks are full."""
        wait = self.throttle.retry_after(self.throttle.keys("", address)[1])
        if wait > 0:
            return SignIn(retry_after_s=wait)
        return SignIn(busy=True) if self.gate.full else None

    async def sign_in(self, username: str, password: str, address: str | None) -> SignIn:
        account, where = self.throttle.keys(username, address)
        at = self.throttle.account_at(username, address)
        if self.gate.full:
            return SignIn(busy=True)
        # the account's attempt counted as failed before argon2 (and taken back on success): the
        # sign-ins of that account queued behind the gate see the back-off this one starts, instead of
        # each getting a guess. The address' once the password is wrong: claimed before, its back-off
        # (up to 15 min) refused every other user behind the same address (a ward's NAT, a proxy)
        # while one of them was signing in with the right password
        if wait := self.throttle.retry_after(where):
            return SignIn(retry_after_s=wait)
        claim = self.throttle.claim_sign_in(account, at)
        if claim.retry_after_s > 0:
            return SignIn(retry_after_s=claim.retry_after_s)
        try:
            user = await self.gate.run(self.verify, username, password)
        except HashingBusy:
            self.throttle.undo(claim)
            return SignIn(busy=True)
        if user is None:
            self.throttle.failed(where)
            return SignIn()
        self.throttle.undo(claim)
        self.throttle.succeeded(account, at)
        return SignIn(user=user)

    def issue(self, user: User) -> tuple[str, Session]:
        session = Session(user.username, user.role, secrets.token_urlsafe(32))
        sid = self.cookies.new_id()
        record = SessionRecord(
            user.username, user.role, session.csrf, password_fingerprint(user.password_hash), time.time()
        )
        self.sessions.put(sid, record, self.max_age_s)
        return self.cookies.seal(sid), session

    def session(self, cookie: str | None, strict: bool = False) -> Session | None:
        """The cookie's session; ``strict``: the store down raises ``SessionStoreUnavailable``
        instead of reading as signed out."""
        sid = self.cookies.open(cookie)
        record = self.sessions.get(sid, strict) if sid else None
        if record is None:
            return None
        user = self.users.get(record.username)
        if user is None or password_fingerprint(user.password_hash) != record.password:
            return None  # removed from the users file, or the password changed, since sign-in
        return Session(user.username, user.role, record.csrf)

    def revoke(self, cookie: str | None) -> None:
        sid = self.cookies.open(cookie)
        if sid:
            self.sessions.delete(sid)

    def login_csrf(self) -> tuple[str, str]:
        """(form token, encrypted cookie value) for the sign-in form (double submit)."""
        token = secrets.token_urlsafe(24)
        return token, self.cookies.seal_login(token)

    def check_login_csrf(self, cookie: str | None, form_token: str | None) -> bool:
        if not cookie or not form_token:
            return False
        expected = self.cookies.open_login(cookie)
        return expected is not None and same_secret(expected, form_token)

    @staticmethod
    def check_csrf(session: Session, header: str | None) -> bool:
        return bool(header) and same_secret(session.csrf, header or "")

    def cookie_args(self) -> dict[str, Any]:
        return {"httponly": True, "samesite": "strict", "secure": self.cookie_secure, "path": "/"}


def build_authenticator(
    settings: Settings,
    users: dict[str, User] | UserDirectory | None,
    session_secret: str | None = None,
    cookie_secure: bool = False,
    shared_sessions: bool = False,
) -> Authenticator:
    """The dashboard's authenticator: sessions in the configured Redis when ``shared_sessions`` (every replica
    sharing ``VIGIL_WEB__SESSION_SECRET`` and that Redis shares them), else in this process; the
    secret from the argument, else the setting, else random; sign-in limits from ``settings.web``."""
    web = settings.web
    secret = session_secret or (web.session_secret.get_secret_value() if web.session_secret else None)
    sessions: SessionStore = MemorySessionStore()
    if shared_sessions:
        sessions = RedisSessionStore.connect(settings)
    return Authenticator(
        users if users is not None else UserDirectory(settings.users_file),
        secret=secret,
        cookie_secure=cookie_secure,
        sessions=sessions,
        max_age_s=web.session_max_age_s,
        throttle=LoginThrottle(web.login_free_failures, web.login_lockout_max_s),
        gate=HashingGate(web.login_hash_concurrency, web.login_queue_limit),
    )


def roles() -> Iterable[str]:
    return ("clinician", "viewer")
