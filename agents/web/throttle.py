"""Sign-in under attack (issue 16): back-off per account at an address, per account and per address,
and a bound on the argon2 verifications running at once.

Without them, 30 wrong passwords took 3.2 s and the right one then got in, and 60 concurrent wrong
sign-ins held 60 argon2 computations of ~64 MiB each (2.56 GB RSS, ``/healthz`` at 3.6 s).

Back-off (OWASP Authentication Cheat Sheet, "account lockout" with an increasing delay rather
than a permanent lock an attacker could use to lock users out): after ``free_failures`` failed
attempts on a key, each further failure blocks the key for 1 s, 2 s, 4 s ... up to ``max_delay_s``.
Three keys:

- the account from everywhere: ``free_failures``, and every failure at every address counts on it, so
  its back-off caps the guess rate on one account whatever the number of addresses (counted only up
  to each address's own free failures, 20 addresses guessed 12,896 times in a week where one address
  got 686, and 100 addresses 45,153). Its back-off does not refuse an address that has signed in on
  the account in the last ``TRUSTED_FOR_S`` (OWASP's device cookies, by address): keyed on the account
  alone and refusing every address, one client that waited out each block (16 failures in 17 min, then
  one per 15 min) kept a clinician out around the clock; now the ward's own computers stay usable
  while any number of addresses guess. An address the account has not signed in from is refused
  while the account backs off: a clinician at a new computer during an attack waits like the guessers;
- the account at one address (``account_at``): ``free_failures``, the back-off of a trusted address
  (one guesser behind the ward's own address);
- the address (every account): ``ADDRESS_FACTOR`` times the free attempts (a ward behind one NAT address).

An IPv6 address counts as its /64 (``address_of``), on every key and for trust: one host is routed a
whole /64 and may send from any address in it (a new address per guess), and a ward computer's
privacy addresses change every day.

A success clears the account's counts (not a back-off it is in: a trusted address signs in through it)
and trusts its address. The state is per web process and bounded (least recently failed keys are
dropped first); with several replicas an attacker gets at most that many times the attempts, still
exponentially slowed.

An attempt is counted as failed when it is let through (``claim``), before its password is checked, and
taken back when the password was right (``undo``): counted only after argon2, the 2 running and 8 queued
sign-ins all passed the check before the first was counted, 10 guesses where the back-off allows one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, TypeVar

ADDRESS_FACTOR = 4
TRUSTED_FOR_S = 30 * 24 * 3600.0  # an address the account signed in from, not refused by its back-off
HASHING_NICE = 10
T = TypeVar("T")
FORGET_AFTER_S = 24 * 3600.0  # a key with no failure for a day starts afresh
# 2.0 ** 1024 overflows a float: an attacker who waited out ~1,025 back-offs (10 days at 15 min) got a 500
# and the key's state wiped; 2 ** 62 s is past any max_delay_s
MAX_DOUBLINGS = 62


@dataclass
class _Failures:
    count: int = 0
    blocked_until: float = 0.0
    last: float = 0.0


@dataclass(frozen=True)
class Claim:
    """One attempt let through by ``LoginThrottle.claim`` and counted as failed on its keys, or refused."""

    retry_after_s: float = 0.0  # > 0: refused (nothing counted), this many seconds before the next attempt
    # per key: its state before the claim (None: none), the state the claim left and that state's count
    counted: tuple[tuple[str, _Failures | None, _Failures, int], ...] = ()


class LoginThrottle:
    def __init__(
        self,
        free_failures: int = 5,
        max_delay_s: float = 900.0,
        max_keys: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures = free_failures
        self.max_delay_s = max_delay_s
        self.max_keys = max_keys
        self._clock = clock
        self._keys: OrderedDict[str, _Failures] = OrderedDict()
        self._trusted: OrderedDict[str, float] = OrderedDict()  # ``account_at`` keys, by their last success
        self._lock = threading.Lock()

    @staticmethod
    def keys(username: str, address: str | None) -> tuple[str, str]:
        return f"account:{username.strip().lower()[:128]}", f"address:{address_of(address)}"

    @staticmethod
    def account_at(username: str, address: str | None) -> str:
        """The key of one account signed in to from one address."""
        account, where = LoginThrottle.keys(username, address)
        return f"at:{account}|{where}"

    def _free(self, key: str) -> int:
        return self.free_failures * (ADDRESS_FACTOR if key.startswith("address:") else 1)

    def retry_after(self, *keys: str) -> float:
        """Seconds before an attempt on all ``keys`` is allowed (0: now)."""
        now = self._clock()
        with self._lock:
            return self._wait(keys, now)

    def _wait(self, keys: tuple[str, ...], now: float) -> float:
        return max((max(self._keys[k].blocked_until - now, 0.0) for k in keys if k in self._keys), default=0.0)

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                self._count(key, now)
            self._bound()

    def claim(self, *keys: str) -> Claim:
        """Let an attempt on ``keys`` through and count it as failed at once, in one step, or refuse it
        (``retry_after_s`` > 0) while a key is backing off: a concurrent attempt sees the back-off this
        one starts before its password is checked. ``undo`` takes it back when the password was right."""
        now = self._clock()
        with self._lock:
            return self._claim(keys, keys, now)

    def claim_sign_in(self, account: str, at: str) -> Claim:
        """``claim`` for one sign-in on the ``account`` key from the ``account_at`` key ``at``: counted on
        both, always (the account's back-off caps the guesses from all addresses together), and the
        account's back-off does not refuse an address it has signed in from (one guesser cannot refuse
        the account to the ward's own computers)."""
        now = self._clock()
        with self._lock:
            trusted = now - self._trusted.get(at, -TRUSTED_FOR_S) < TRUSTED_FOR_S
            return self._claim((at,) if trusted else (at, account), (at, account), now)

    def _claim(self, checked: tuple[str, ...], counted_keys: tuple[str, ...], now: float) -> Claim:
        """Refuse while a ``checked`` key backs off, else count the attempt on ``counted_keys`` (under the lock)."""
        wait = self._wait(checked, now)
        if wait > 0:
            return Claim(retry_after_s=wait)
        counted = []
        for key in counted_keys:
            before = self._keys.get(key)
            before = replace(before) if before is not None else None  # a copy: the state is changed in place
            state = self._count(key, now)
            counted.append((key, before, state, state.count))
        self._bound()
        return Claim(counted=tuple(counted))

    def undo(self, claim: Claim) -> None:
        """Take back what ``claim`` counted: each key as it was before, unless another failure was counted
        on it since (then only this attempt is taken off its count; the back-off that failure set stands)."""
        with self._lock:
            for key, before, state, count in claim.counted:
                current = self._keys.get(key)
                if current is state and current.count == count:
                    if before is None:
                        del self._keys[key]
                    else:
                        self._keys[key] = before
                elif current is not None and current.count > 0:
                    current.count -= 1

    def _count(self, key: str, now: float) -> _Failures:
        """One failure on ``key`` (under the lock)."""
        state = self._keys.pop(key, None) or _Failures()
        if now - state.last > FORGET_AFTER_S:
            state = _Failures()
        state.count += 1
        state.last = now
        over = state.count - self._free(key)
        if over > 0:
            state.blocked_until = now + min(2.0 ** min(over - 1, MAX_DOUBLINGS), self.max_delay_s)
        self._keys[key] = state
        return state

    def _bound(self) -> None:
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        while len(self._trusted) > self.max_keys:
            self._trusted.popitem(last=False)

    def succeeded(self, account_key: str, at: str | None = None) -> None:
        """The account's counts cleared and its address (``at``) trusted. Only the account: a success on
        one account must not reset its address's count. Not the account's back-off while it runs: a
        trusted address signs in through it, and would give the guessers at other addresses their free
        failures again at each sign-in."""
        now = self._clock()
        with self._lock:
            state = self._keys.get(account_key)
            if state is None or state.blocked_until <= now:
                self._keys.pop(account_key, None)
            if at is not None:
                self._keys.pop(at, None)
                self._trusted.pop(at, None)
                self._trusted[at] = now
                self._bound()


def address_of(address: str | None) -> str:
    """The address a client is counted by: an IPv6 address as its /64 (a host is routed a whole /64
    and may send from any address in it), an IPv4-mapped one as its IPv4 address, anything else as given."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


class HashingBusy(Exception):
    """More sign-ins are waiting for a password check than the queue allows."""


class HashingGate:
    """At most ``concurrency`` password verifications at once, at most ``queue_limit`` waiting;
    beyond that a sign-in is refused at once (503) instead of queueing memory and threads.

    Verifications run on their own threads at a lower CPU priority (Linux nice values are per
    thread, and the argon2 lanes' threads inherit it): on a busy machine the event loop, and with
    it ``/healthz``, keeps the CPU while passwords are checked."""

    def __init__(self, concurrency: int = 2, queue_limit: int = 8) -> None:
        self.concurrency, self.queue_limit = concurrency, queue_limit
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="vigil-argon2", initializer=_lower_priority)
        self._admitted = 0

    @property
    def full(self) -> bool:
        return self._admitted >= self.concurrency + self.queue_limit

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.full:
            raise HashingBusy
        self._admitted += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._admitted -= 1


def _lower_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or not permitted: normal priority
        os.setpriority(os.PRIO_PROCESS, 0, HASHING_NICE)  # 0 = this thread (Linux)
