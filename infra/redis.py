"""Per-patient state in Redis: one pipelined round trip to read a batch, one to write it.

Keys hold a keyed hash of the patient id, not the id (state cannot be enumerated by MRN).
Writes that fail are retried until Redis answers again; the caller does not ack the Kafka
events meanwhile, so nothing accepted is lost and the worker never crash-loops.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from vigil.infra.logging import get_logger, patient_hash
from vigil.models.stepping import StayCarry
from vigil.models.window import PatientWindow

log = get_logger(__name__)
T = TypeVar("T")


def window_key(patient_id: str) -> str:
    return f"vigil:w:{patient_hash(patient_id)}"


def carry_key(patient_id: str) -> str:
    """The stepping carry (``models.stepping.StayCarry``): aggregates and recurrent states beside the window."""
    return f"vigil:c:{patient_hash(patient_id)}"


def alert_key(patient_id: str) -> str:
    return f"vigil:a:{patient_hash(patient_id)}"


def care_key(patient_id: str) -> str:
    return f"vigil:t:{patient_hash(patient_id)}"


def _as_bytes(blob: bytes | str | None) -> bytes | None:
    return blob.encode() if isinstance(blob, str) else blob


def _carry_or_none(blob: bytes | None) -> StayCarry | None:
    """A carry this version cannot read (another blob version) is rebuilt from the window, not fatal."""
    if not blob:
        return None
    try:
        return StayCarry.from_bytes(blob)
    except (ValueError, struct.error) as exc:
        log.warning("carry.unreadable", error=type(exc).__name__)
        return None


class RedisHealth:
    """Readiness as seen by the worker: False while Redis calls are failing."""

    def __init__(self) -> None:
        self.ok = True
        self.failures = 0
        self.last_latency_s = 0.0


def _configured_credentials() -> tuple[str | None, str | None]:
    """ACL user and password from settings, or from a secure embedded stack's secrets."""
    from vigil.infra.settings import get_settings
    from vigil.infra.tls import with_stack_credentials

    r = with_stack_credentials(get_settings()).redis
    return r.username, r.password.get_secret_value() if r.password else None


class PatientStore:
    def __init__(
        self,
        url: str,
        ttl_s: int,
        health: RedisHealth | None = None,
        password: str | None = None,
        username: str | None = None,
    ) -> None:
        if password is None and username is None:
            username, password = _configured_credentials()
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=5,
            socket_connect_timeout=2,
            password=password,
            username=username,
            decode_responses=False,
        )
        self.ttl_s = ttl_s
        self.health = health or RedisHealth()

    async def close(self) -> None:
        await self.client.aclose()

    async def _until_ok(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        delay = 0.1
        while True:
            t0 = time.perf_counter()
            try:
                result = await call()
            except (RedisError, OSError) as exc:
                self.health.ok = False
                self.health.failures += 1
                log.warning("redis.unavailable", op=what, error=type(exc).__name__, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            self.health.last_latency_s = time.perf_counter() - t0
            if not self.health.ok:
                log.info("redis.recovered", op=what)
            self.health.ok = True
            return result

    async def load_windows(self, patient_ids: Iterable[str]) -> dict[str, PatientWindow]:
        ids = list(patient_ids)
        blobs = await self._until_ok("mget", lambda: self.client.mget([window_key(p) for p in ids]))
        return {pid: PatientWindow.from_bytes(_as_bytes(blob)) for pid, blob in zip(ids, blobs, strict=True)}

    async def save_windows(self, windows: dict[str, PatientWindow]) -> None:
        async def write() -> None:
            pipe = self.client.pipeline(transaction=False)
            for pid, window in windows.items():
                pipe.set(window_key(pid), window.to_bytes(), ex=self.ttl_s)
            await pipe.execute()

        await self._until_ok("set", write)

    async def load_states(self, patient_ids: Iterable[str]) -> dict[str, tuple[PatientWindow, StayCarry | None]]:
        """Window and stepping carry of each patient in one MGET (None: no carry stored yet)."""
        ids = list(patient_ids)
        keys = [k for p in ids for k in (window_key(p), carry_key(p))]
        blobs = await self._until_ok("mget", lambda: self.client.mget(keys))
        out: dict[str, tuple[PatientWindow, StayCarry | None]] = {}
        for i, pid in enumerate(ids):
            window, carry = _as_bytes(blobs[2 * i]), _as_bytes(blobs[2 * i + 1])
            out[pid] = (PatientWindow.from_bytes(window), _carry_or_none(carry))
        return out

    async def save_states(self, states: dict[str, tuple[PatientWindow, StayCarry | None]]) -> None:
        """Window and carry of each patient in one round trip, as one MULTI/EXEC: a reader never
        sees a window without the carry that matches it (no carry yet: none is written)."""

        async def write() -> None:
            pipe = self.client.pipeline(transaction=True)
            for pid, (window, carry) in states.items():
                pipe.set(window_key(pid), window.to_bytes(), ex=self.ttl_s)
                if carry is not None:
                    pipe.set(carry_key(pid), carry.to_bytes(), ex=self.ttl_s)
            await pipe.execute()

        await self._until_ok("set", write)

    async def load_blobs(self, keys: list[str]) -> list[bytes | None]:
        blobs = await self._until_ok("mget", lambda: self.client.mget(keys))
        return [_as_bytes(b) for b in blobs]

    async def save_blobs(self, items: dict[str, bytes]) -> None:
        async def write() -> None:
            pipe = self.client.pipeline(transaction=False)
            for key, blob in items.items():
                pipe.set(key, blob, ex=self.ttl_s)
            await pipe.execute()

        await self._until_ok("set", write)

    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False
