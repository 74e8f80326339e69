"""Sign-in that holds (issue 16): back-off per account and address, a bound on argon2 at once,
sessions that end on sign-out, user removal and password change, cookies nobody can read, and a
shared secret for several replicas."""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import threading
import time

import pytest
from fastapi.testclient import TestClient
from web_builders import PASSWORD, csrf_of, sign_in

import vigil.agents.web.auth as auth_module
from vigil.agents.web.app import create_app
from vigil.agents.web.auth import Authenticator, UserDirectory, add_user, remove_user
from vigil.agents.web.feed import WardFeed
from vigil.agents.web.sessions import MemorySessionStore
from vigil.agents.web.throttle import ADDRESS_FACTOR, HashingBusy, HashingGate, LoginThrottle
from vigil.infra.settings import Settings, WebSettings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_after_the_free_failures_and_caps() -> None:
    clock = Clock()
    throttle = LoginThrottle(free_failures=3, max_delay_s=60, clock=clock)
    account, address = throttle.keys("Ann", "10.0.0.1")
    for _ in range(3):
        assert throttle.retry_after(account, address) == 0
        throttle.failed(account, address)
    assert throttle.retry_after(account) == 0  # three free failures (a typo or two)
    delays = []
    for _ in range(9):
        throttle.failed(account)
        delays.append(throttle.retry_after(account))
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    clock.now += 61
    assert throttle.retry_after(account) == 0
    throttle.succeeded(account)
    throttle.failed(account)
    assert throttle.retry_after(account) == 0  # a success starts the account afresh
    assert throttle.keys("ANN ", None)[0] == account  # names are compared case-insensitively


def test_an_address_gets_more_free_attempts_but_is_throttled_across_accounts() -> None:
    clock = Clock()
    throttle = LoginThrottle(free_failures=2, clock=clock)
    for i in range(2 * ADDRESS_FACTOR):
        account, address = throttle.keys(f"user{i}", "10.9.9.9")
        throttle.failed(account, address)
    assert throttle.retry_after(address) == 0
    throttle.failed(*throttle.keys("another", "10.9.9.9"))
    assert throttle.retry_after(address) == 1  # spraying many names from one address


def test_state_is_bounded() -> None:
    throttle = LoginThrottle(max_keys=100)
    for i in range(1000):
        throttle.failed(f"account:{i}")
    assert len(throttle._keys) == 100


def test_hashing_gate_bounds_concurrency_and_refuses_beyond_the_queue() -> None:
    gate = HashingGate(concurrency=2, queue_limit=3)
    lock = threading.Lock()
    running, peak = 0, 0

    def check() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    async def attempt() -> bool:
        try:
            await gate.run(check)
            return True
        except HashingBusy:
            return False

    async def main() -> list[bool]:
        return await asyncio.gather(*(attempt() for _ in range(20)))

    admitted = asyncio.run(main())
    assert peak == 2 and admitted.count(True) == 5  # 2 running + 3 queued, the rest refused at once
    assert os.getpriority(os.PRIO_PROCESS, 0) == 0  # only the hashing threads are niced


@pytest.fixture
def users_file(tmp_path):
    path = tmp_path / "users.json"
    add_user(path, "ann", PASSWORD, "clinician")
    add_user(path, "vic", PASSWORD, "viewer")
    return path


@pytest.fixture
def live(users_file, monkeypatch):
    """An app whose users file is re-read on every request."""
    monkeypatch.setattr(auth_module, "USERS_RECHECK_S", 0.0)
    settings = Settings(web=WebSettings(login_free_failures=3))
    with TestClient(create_app(settings, WardFeed(settings), users=UserDirectory(users_file, env={}))) as client:
        yield client


def test_wrong_passwords_then_429_even_for_the_right_one(live) -> None:
    for _ in range(3):
        assert sign_in(live, "ann", "wrong").status_code == 401
    r = sign_in(live, "ann", "wrong")
    assert r.status_code == 401  # the 4th failure is counted and starts the back-off
    r = sign_in(live, "ann")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert "vigil_session" not in live.cookies


def test_the_cookie_reveals_nothing_and_sign_out_ends_the_session(live) -> None:
    sign_in(live, "ann")
    cookie = live.cookies["vigil_session"]
    csrf = csrf_of(live)
    padded = cookie + "=" * (-len(cookie) % 4)
    for decode in (base64.urlsafe_b64decode, base64.b64decode):
        try:
            raw = decode(padded)
        except (binascii.Error, ValueError):
            continue
        assert b"ann" not in raw and csrf.encode() not in raw and b"clinician" not in raw
    assert live.post("/logout", headers={"X-CSRF-Token": csrf}).status_code == 200
    live.cookies.set("vigil_session", cookie)  # the old cookie, replayed
    assert live.get("/api/state").status_code == 401


def test_removing_a_user_or_changing_the_password_ends_their_sessions(live, users_file) -> None:
    sign_in(live, "ann")
    ann = live.cookies["vigil_session"]
    assert live.get("/api/state").status_code == 200
    add_user(users_file, "ann", "a-new-password-1", "clinician")
    assert live.get("/api/state").status_code == 401
    live.cookies.clear()
    sign_in(live, "vic")
    assert live.get("/api/state").status_code == 200
    assert remove_user(users_file, "vic")
    assert live.get("/api/state").status_code == 401
    live.cookies.set("vigil_session", ann)
    assert live.get("/api/state").status_code == 401


def test_replicas_sharing_the_secret_and_store_share_sessions(users_file) -> None:
    store = MemorySessionStore()  # stands in for the Redis both replicas use
    users = UserDirectory(users_file, env={})
    one = Authenticator(users, secret="shared", sessions=store)
    two = Authenticator(users, secret="shared", sessions=store)
    other = Authenticator(users, secret="not-shared", sessions=store)
    token, session = one.issue(users.current()["ann"])
    assert two.session(token) == session and other.session(token) is None
    two.revoke(token)
    assert one.session(token) is None


def test_the_session_secret_setting_is_used(users_file) -> None:
    from vigil.agents.web.auth import build_authenticator

    settings = Settings(web=WebSettings(session_secret="from-settings"))
    users = UserDirectory(users_file, env={})
    a = build_authenticator(settings, users)
    token, _ = a.issue(users.current()["ann"])
    b = Authenticator(users, secret="from-settings", sessions=a.sessions)
    assert b.session(token) is not None


def test_a_concurrent_flood_is_refused_beyond_the_queue(users) -> None:
    auth = Authenticator(users, secret="x", gate=HashingGate(1, 1), throttle=LoginThrottle(1000))

    async def main() -> list[object]:
        return await asyncio.gather(*(auth.sign_in("ann", "wrong", f"10.0.0.{i}") for i in range(10)))

    outcomes = asyncio.run(main())
    assert sum(o.busy for o in outcomes) == 8  # one hashing, one waiting, eight answered at once
