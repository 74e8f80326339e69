"""Server-side dashboard sessions (issue 16): a session ends when its record is deleted (sign-out),
when its user leaves the users file, or when the user's password hash changes.

The cookie holds only a random session id, encrypted and authenticated with Fernet (AES-128-CBC +
HMAC-SHA256, the ``cryptography`` package) under a key derived (HKDF-SHA256) from the session
secret: nothing in it is readable by base64-decoding it, and a forged or altered cookie fails to
decrypt. The record (user, role, CSRF token, password-hash fingerprint) lives in Redis under
``vigil:session:<sha256 of the id>``, expiring with the session, so every web replica that shares
``VIGIL_WEB__SESSION_SECRET`` and Redis shares the sessions. ``MemorySessionStore`` serves one
process (unit tests, a dashboard without Redis).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vigil.infra.connect import redis_client
from vigil.infra.logging import get_logger
from vigil.infra.settings import Settings

log = get_logger("vigil.web.sessions")
KEY_PREFIX = "vigil:session:"


def derived_fernet(secret: str, purpose: bytes) -> Fernet:
    """A Fernet key for one purpose (session cookie, login form token) from the shared secret."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"vigil-web", info=purpose).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def password_fingerprint(password_hash: str) -> str:
    """Changes whenever the password does (the argon2 hash carries a fresh salt)."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SessionRecord:
    username: str
    role: str
    csrf: str
    password: str  # password_fingerprint of the hash the user signed in with
    created: float


class SessionStoreUnavailable(Exception):
    """The session store did not answer a write (Redis down): no session can be opened or ended now."""


class SessionStore(Protocol):
    def put(self, sid: str, record: SessionRecord, ttl_s: int) -> None: ...
    def get(self, sid: str, strict: bool = False) -> SessionRecord | None: ...
    def delete(self, sid: str) -> None: ...


class MemorySessionStore:
    """Sessions of one process, bounded (oldest dropped first)."""

    def __init__(self, max_sessions: int = 10_000) -> None:
        self._items: OrderedDict[str, tuple[float, SessionRecord]] = OrderedDict()
        self._lock = threading.Lock()
        self.max_sessions = max_sessions

    def put(self, sid: str, record: SessionRecord, ttl_s: int) -> None:
        with self._lock:
            self._items[sid] = (time.time() + ttl_s, record)
            while len(self._items) > self.max_sessions:
                self._items.popitem(last=False)

    def get(self, sid: str, strict: bool = False) -> SessionRecord | None:
        with self._lock:
            item = self._items.get(sid)
        if item is None or item[0] < time.time():
            return None
        return item[1]

    def delete(self, sid: str) -> None:
        with self._lock:
            self._items.pop(sid, None)


class RedisSessionStore:
    """Sessions in Redis, shared by every web replica. Fails closed: Redis down = signed out, and a
    sign-in or sign-out then raises ``SessionStoreUnavailable`` (answered 503 with Retry-After)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def connect(cls, settings: Settings) -> RedisSessionStore:
        """The configured Redis, with the same credentials as every other client (infra.connect)."""
        return cls(redis_client(settings, socket_timeout=1, socket_connect_timeout=1))

    @staticmethod
    def _key(sid: str) -> str:
        # the id's digest: a copy of Redis gives no usable session id
        return KEY_PREFIX + hashlib.sha256(sid.encode()).hexdigest()

    def put(self, sid: str, record: SessionRecord, ttl_s: int) -> None:
        import redis

        try:
            self._client.set(self._key(sid), json.dumps(asdict(record)), ex=ttl_s)
        except (redis.RedisError, OSError) as exc:
            log.warning("session_store_unavailable", error=type(exc).__name__)
            raise SessionStoreUnavailable from exc

    def get(self, sid: str, strict: bool = False) -> SessionRecord | None:
        """The session, None when there is none; Redis down: None (signed out), or with ``strict``
        ``SessionStoreUnavailable`` (a live stream re-checking its session: a Redis restart of a
        few seconds must not end every ward's stream and send its screen to the sign-in page)."""
        import redis

        try:
            raw = self._client.get(self._key(sid))
        except (redis.RedisError, OSError) as exc:
            log.warning("session_store_unavailable", error=type(exc).__name__)
            if strict:
                raise SessionStoreUnavailable from exc
            return None
        if raw is None:
            return None
        try:
            return SessionRecord(**json.loads(raw))
        except (ValueError, TypeError):
            return None

    def delete(self, sid: str) -> None:
        import redis

        try:
            self._client.delete(self._key(sid))
        except (redis.RedisError, OSError) as exc:
            log.warning("session_store_unavailable", error=type(exc).__name__)
            raise SessionStoreUnavailable from exc


class SessionCookies:
    """Encrypt and decrypt the session id carried by the cookie, and the login form's token."""

    def __init__(self, secret: str, max_age_s: int) -> None:
        self._session = derived_fernet(secret, b"session-cookie")
        self._login = derived_fernet(secret, b"login-csrf")
        self.max_age_s = max_age_s

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(32)

    def seal(self, sid: str) -> str:
        return self._session.encrypt(sid.encode()).decode()

    def open(self, cookie: str | None) -> str | None:
        if not cookie:
            return None
        try:
            return self._session.decrypt(cookie.encode(), ttl=self.max_age_s).decode()
        except (InvalidToken, ValueError, UnicodeError):
            return None

    def seal_login(self, token: str) -> str:
        return self._login.encrypt(token.encode()).decode()

    def open_login(self, cookie: str, max_age_s: int = 3600) -> str | None:
        try:
            return self._login.decrypt(cookie.encode(), ttl=max_age_s).decode()
        except (InvalidToken, ValueError, UnicodeError):
            return None
