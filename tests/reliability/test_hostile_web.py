"""The dashboard process under hostile HTTP (issue 16), as ``vigil serve`` processes against the
session's real broker and Redis: an amplifying FHIR Bundle, a sign-in flood, and sessions that end
on sign-out, user removal and password change, shared by two replicas."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import pytest

from tests.conftest import wait_for
from tests.reliability.helpers import report, rss_kb
from vigil.agents.web.server import free_port
from vigil.infra.workers import worker_env
from vigil.schemas import topics

pytestmark = pytest.mark.reliability

PASSWORD = "correct horse battery"
TOKEN = "hostile-intake-token"
SECRET = "hostile-shared-session-secret"


class Serve:
    """One ``vigil serve`` process on a free port."""

    def __init__(self, settings, users_file: Path, log: Path, env: dict[str, str] | None = None) -> None:

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # the stack's endpoints and home (its Redis password is read from <home>/secrets)
        environ = worker_env(
            settings,
            {
                "VIGIL_API_TOKEN": TOKEN,
                "VIGIL_LOG_HASH_KEY": "hostile-test-log-key",
                "VIGIL_WEB__SESSION_SECRET": SECRET,
                **(env or {}),
            },
        )
        cmd = [sys.executable, "-m", "vigil.cli", "serve", "--port", str(self.port), "--users-file", str(users_file)]
        self.proc = subprocess.Popen(cmd, env=environ, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        ok = wait_for(self._alive, timeout=60, interval=0.25)
        assert ok, f"vigil serve did not start: {log.read_text()[-2000:]}"

    def _alive(self) -> bool:
        try:
            return httpx2.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx2.HTTPError:
            return False

    def rss_mb(self) -> float:
        return (rss_kb(self.proc.pid) or 0) / 1024

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture
def users_file(tmp_path) -> Path:
    from vigil.agents.web.auth import add_user

    path = tmp_path / "users.json"
    add_user(path, "ann", PASSWORD, "clinician")
    add_user(path, "vic", PASSWORD, "viewer")
    return path


@pytest.fixture
def serve(stack, stack_settings, users_file, tmp_path) -> Iterator[Callable[..., Serve]]:
    started: list[Serve] = []

    def _serve(env: dict[str, str] | None = None) -> Serve:
        server = Serve(stack_settings, users_file, tmp_path / f"serve-{len(started)}.log", env)
        started.append(server)
        return server

    yield _serve
    for server in started:
        server.stop()


HEALTHZ_PROBE = """
import sys, time, httpx2
url, interval, out = sys.argv[1], float(sys.argv[2]), open(sys.argv[3], "w")
with httpx2.Client(timeout=30) as client:
    while True:
        t0 = time.perf_counter()
        client.get(url)
        out.write(f"{(time.perf_counter() - t0) * 1000:.2f}\\n")
        out.flush()
        time.sleep(interval)
"""


class Sampler:
    """While running: the server's RSS, and ``/healthz`` latency measured by a separate process
    (so the test's own client threads do not slow the measurement), every ``interval_s``."""

    def __init__(self, server: Serve, out: Path, interval_s: float = 0.05) -> None:
        self.server, self.interval_s, self.out = server, interval_s, out
        self.rss: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._rss, daemon=True)
        self._probe: subprocess.Popen[bytes] | None = None

    def _rss(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.rss.append(self.server.rss_mb())

    def __enter__(self) -> Sampler:
        args = [sys.executable, "-c", HEALTHZ_PROBE, f"{self.server.url}/healthz", str(self.interval_s), str(self.out)]
        self._probe = subprocess.Popen(args)
        wait_for(lambda: self.out.exists() and self.out.stat().st_size > 0, timeout=20, interval=0.05)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._probe is not None:
            self._probe.terminate()
            self._probe.wait(timeout=10)

    def figures(self, baseline_mb: float) -> dict[str, float]:
        ordered = sorted(float(x) for x in self.out.read_text().split()) or [0.0]
        return {
            "rss_baseline_mb": round(baseline_mb, 1),
            "rss_peak_mb": round(max(self.rss, default=baseline_mb), 1),
            "rss_growth_mb": round(max(self.rss, default=baseline_mb) - baseline_mb, 1),
            "healthz_samples": len(ordered),
            "healthz_p50_ms": round(ordered[len(ordered) // 2], 1),
            "healthz_p95_ms": round(ordered[int(len(ordered) * 0.95)], 1),
            "healthz_max_ms": round(ordered[-1], 1),
        }


def rejected_bundle(entries: int) -> bytes:
    """``entries`` Observations whose code maps to nothing: each one is a dead letter."""
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "0000-0"}]},
        "subject": {"reference": "Patient/amplify"},
        "effectiveDateTime": now,
        "valueQuantity": {"value": 1},
    }
    entries_json = [{"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": resource} for _ in range(entries)]
    return json.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries_json}).encode()


def test_an_amplifying_bundle_stays_under_the_memory_bound(stack_settings, serve, results_dir, tmp_path) -> None:
    from vigil.infra.connect import consumer_from_now

    server = serve({"VIGIL_WEB__FHIR_MAX_ENTRIES": "10000"})
    body = rejected_bundle(10_000)
    dead = consumer_from_now(stack_settings, (topics.DEADLETTER,), consumer_timeout_ms=500)
    time.sleep(2.0)  # the server's feed has started; RSS settles
    baseline = server.rss_mb()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/fhir+json"}
    with Sampler(server, tmp_path / "healthz.txt") as sampler:
        t0 = time.perf_counter()
        r = httpx2.post(f"{server.url}/fhir", content=body, headers=headers, timeout=300)
        request_s = time.perf_counter() - t0
    figures = sampler.figures(baseline)
    sizes: list[int] = []
    deadline = time.monotonic() + 60
    while len(sizes) < 10_000 and time.monotonic() < deadline:
        for records in dead.poll(timeout_ms=500, max_records=5000).values():
            sizes += [len(rec.value) for rec in records if json.loads(rec.value)["source_topic"] == "http:/fhir"]
    dead.close()
    over = rejected_bundle(10_001)
    capped = httpx2.post(f"{server.url}/fhir", content=over, headers=headers, timeout=60)
    default_cap = serve()  # the default limit (1,000 entries per request)
    refused = httpx2.post(f"{default_cap.url}/fhir", content=body, headers=headers, timeout=60)
    counts = {
        "entries": 10_000,
        "body_bytes": len(body),
        "status": r.status_code,
        "request_s": round(request_s, 2),
        **figures,
        "dead_letters": len(sizes),
        "dead_letter_max_bytes": max(sizes, default=0),
        "dead_letter_total_bytes": sum(sizes),
        "over_cap_status": capped.status_code,
        "default_cap_status": refused.status_code,
        "default_cap_detail": refused.json()["issue"][0]["diagnostics"],
    }
    report(results_dir, "hostile_fhir_bundle", counts)
    assert r.status_code == 400, r.text[:500]  # nothing mapped: every entry rejected
    assert counts["dead_letters"] == 10_000 and counts["dead_letter_max_bytes"] < 2_000, counts
    # memory is the bound (5.6 GB before); /healthz latency is a figure (docs/reliability.md, ~50 ms
    # p95 measured), asserted only against the multi-second stall of the defect, not a timing goal
    assert counts["rss_growth_mb"] < 100 and counts["healthz_p95_ms"] < 1000, counts
    assert capped.status_code == 413 and refused.status_code == 413 and "limit 1000" in counts["default_cap_detail"]


def _login_form(client: httpx2.Client, close: bool = False) -> str:
    headers = {"Connection": "close"} if close else None
    page = client.get("/login", headers=headers).text
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]


def _attempt(url: str, username: str, password: str) -> int:
    with httpx2.Client(base_url=url, timeout=60) as client:
        token = _login_form(client)
        r = client.post("/login", data={"username": username, "password": password, "csrf": token})
        return r.status_code


def _right_password_in_back_off(url: str, username: str) -> int:
    """Wrong passwords until one is counted (its 401 starts a back-off of >= 1 s), then at once the
    right password, its form fetched beforehand: the answer must be the back-off's 429. (Sending it
    after the 30 wrong ones failed on a loaded machine: the back-off had run out meanwhile.)"""
    with httpx2.Client(base_url=url, timeout=60) as right, httpx2.Client(base_url=url, timeout=60) as wrong:
        token = _login_form(right)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            r = wrong.post("/login", data={"username": username, "password": "wrong", "csrf": _login_form(wrong)})
            if r.status_code == 401:
                return right.post(
                    "/login", data={"username": username, "password": PASSWORD, "csrf": token}
                ).status_code
            time.sleep(min(float(r.headers.get("Retry-After", "1")), 10.0))  # 429: wait the back-off out
    raise AssertionError("no counted failure within 120 s")


def _flood(
    server: Serve, attempts: int, usernames: Callable[[int], str], out: Path
) -> tuple[Counter[int], dict[str, float]]:
    """``attempts`` wrong sign-ins posted at the same instant (each with its own form token)."""
    clients = [httpx2.Client(base_url=server.url, timeout=120) for _ in range(attempts)]
    # each form on a connection closed after it: a kept-alive one can sit idle past the server's
    # keep-alive timeout (5 s) while the other forms load, and its post then races the server's close
    # (a connection reset on a loaded machine, CI 3 December)
    tokens = [_login_form(c, close=True) for c in clients]
    start = threading.Barrier(attempts)

    def post(i: int) -> int:
        start.wait()
        form = {"username": usernames(i), "password": "wrong-password", "csrf": tokens[i]}
        return clients[i].post("/login", data=form).status_code

    time.sleep(1.0)
    baseline = server.rss_mb()
    with Sampler(server, out, interval_s=0.02) as sampler, ThreadPoolExecutor(attempts) as pool:
        statuses = Counter(pool.map(post, range(attempts)))
        time.sleep(0.5)
    for c in clients:
        c.close()
    return statuses, sampler.figures(baseline)


def test_a_sign_in_flood_is_throttled_and_hashing_is_bounded(serve, results_dir, tmp_path) -> None:
    throttled = serve()
    # 30 wrong passwords for one account, then the right one
    sequential = Counter(_attempt(throttled.url, "ann", "wrong") for _ in range(30))
    right_after = _right_password_in_back_off(throttled.url, "ann")
    # 60 at once against the default limits (per-account and per-address back-off)
    flood, flood_figures = _flood(throttled, 60, lambda i: "vic", tmp_path / "flood.txt")
    # 60 at once with the back-off out of the way: only the hashing bound holds the memory
    unthrottled = serve({"VIGIL_WEB__LOGIN_FREE_FAILURES": "100000"})
    burst, burst_figures = _flood(unthrottled, 60, lambda i: f"user{i}", tmp_path / "burst.txt")
    counts = {
        "sequential_30_wrong": dict(sequential),
        "right_password_after_30_wrong": right_after,
        "flood_60_statuses": dict(flood),
        **{f"flood_{k}": v for k, v in flood_figures.items()},
        "burst_60_statuses": dict(burst),
        **{f"burst_{k}": v for k, v in burst_figures.items()},
    }
    report(results_dir, "hostile_login_flood", counts)
    # 5 free failures, then 1 s, 2 s, 4 s ... between allowed tries: most of the 30 are refused unhashed
    # (<= 9 counted while the 30 take under 15 s; a loaded machine may take longer, hence 10)
    assert sequential[401] <= 10 and sequential[429] >= 20, counts
    assert right_after == 429, "the right password must wait out the back-off"
    # at once: 2 hashing + 8 queued are admitted (a few more as slots free up), the rest 503 unhashed
    assert flood[401] <= 20 and flood[429] + flood[503] >= 40, counts
    assert burst[401] <= 20 and burst[503] >= 40, counts
    # /healthz stays responsive while sign-ins flood in (3.6 s before). The measured latency is a
    # figure in docs/reliability.md (p95 22-53 ms); on a loaded shared machine a timing goal would
    # make the test flaky, so the assertion only catches the stall of the defect.
    for figures in (flood_figures, burst_figures):
        assert figures["healthz_p95_ms"] < 1000 and figures["healthz_max_ms"] < 3000, counts
    assert burst_figures["rss_growth_mb"] < 1000, counts  # ~64 MiB per argon2: at most 2 at once


def _signed_in(url: str, user: str = "ann") -> httpx2.Client:
    client = httpx2.Client(base_url=url, timeout=10)
    r = client.post("/login", data={"username": user, "password": PASSWORD, "csrf": _login_form(client)})
    assert r.status_code == 303, r.text
    return client


def test_revoked_sessions_are_refused_across_replicas(serve, users_file, results_dir) -> None:
    from vigil.agents.web.auth import add_user, remove_user

    one, two = serve(), serve()  # two replicas: one secret, one Redis
    results: dict[str, int] = {}
    ann = _signed_in(one.url)
    cookie = ann.cookies["vigil_session"]
    replica = httpx2.Client(base_url=two.url, timeout=10, cookies={"vigil_session": cookie})
    results["other_replica_before_logout"] = replica.get("/api/state").status_code
    csrf = replica.get("/api/state").json()["csrf"]
    results["logout_on_other_replica"] = replica.post("/logout", headers={"X-CSRF-Token": csrf}).status_code
    results["replayed_cookie_after_logout"] = ann.get("/api/state").status_code

    vic = _signed_in(one.url, "vic")
    results["before_removal"] = vic.get("/api/state").status_code
    remove_user(users_file, "vic")
    time.sleep(1.5)  # the users file is looked at once a second
    results["after_user_removal"] = vic.get("/api/state").status_code
    results["after_user_removal_other_replica"] = httpx2.get(
        f"{two.url}/api/state", cookies={"vigil_session": vic.cookies["vigil_session"]}
    ).status_code

    ann = _signed_in(two.url)
    results["before_password_change"] = ann.get("/api/state").status_code
    add_user(users_file, "ann", "a-brand-new-password", "clinician")
    time.sleep(1.5)
    results["after_password_change"] = ann.get("/api/state").status_code
    report(results_dir, "hostile_sessions", results)
    assert results["other_replica_before_logout"] == 200 and results["logout_on_other_replica"] == 200
    assert results["before_removal"] == 200 and results["before_password_change"] == 200
    refused = ("replayed_cookie_after_logout", "after_user_removal", "after_user_removal_other_replica")
    assert all(results[k] == 401 for k in (*refused, "after_password_change")), results
