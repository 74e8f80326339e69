"""What an unauthenticated or careless request can make the dashboard do: a sign-in form or an
acknowledgement is read only up to 16 KiB (counted as it streams, not from Content-Length alone) and
never with a file; a token with a non-ASCII character is a wrong token, not a 500."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from prometheus_client import REGISTRY
from web_builders import API_TOKEN, alert, csrf_of, sign_in

from vigil.agents.web.app import create_app
from vigil.agents.web.auth import same_secret
from vigil.agents.web.deps import SMALL_BODY_BYTES
from vigil.schemas import topics


def count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def login_form_token(client) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)


# --- body size ------------------------------------------------------------------------------------


def test_a_sign_in_body_over_the_limit_is_413_before_it_is_parsed(client) -> None:
    """48 MiB of urlencoded fields were parsed whole (or a 64 MiB file spooled) before any check."""
    token = login_form_token(client)
    padding = "A" * SMALL_BODY_BYTES
    r = client.post("/login", data={"username": "ann", "password": "x", "csrf": token, "pad": padding})
    assert r.status_code == 413
    r = client.post(
        "/login",
        data={"username": "ann", "csrf": token},
        files={"f": ("x.bin", b"A" * (SMALL_BODY_BYTES + 1), "application/octet-stream")},
    )
    assert r.status_code == 413
    assert sign_in(client, "ann").status_code == 303  # a real form still signs in


def test_a_sign_in_form_with_a_file_or_too_many_fields_is_refused(client) -> None:
    token = login_form_token(client)
    fields = {"username": "ann", "password": "x", "csrf": token}
    r = client.post("/login", data=fields, files={"f": ("x.bin", b"tiny", "application/octet-stream")})
    assert r.status_code == 400  # no file is spooled, whatever its size
    r = client.post("/login", data=fields | {f"f{n}": "1" for n in range(10)})
    assert r.status_code == 400


def test_a_streamed_body_is_counted_as_it_comes_and_cut_off(settings, feed, users) -> None:
    """A chunked body declares no length: the limit counts the bytes received and stops reading."""
    app = create_app(settings, feed, users=users, session_secret="test-secret")
    chunk, chunks = b"A" * 4096, 1000  # 4 MiB offered
    pulled = 0
    answer: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled < chunks}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/login",
        "raw_path": b"/login",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    asyncio.run(app(scope, receive, send))
    assert answer["status"] == 413
    assert pulled <= SMALL_BODY_BYTES // len(chunk) + 1  # stopped reading at the limit


def test_an_acknowledgement_body_over_the_limit_is_413(client, feed) -> None:
    feed.ingest(topics.ALERTS, alert("p9", alert_id="a-big").model_dump_json().encode())
    sign_in(client, "ann")
    headers = {"X-CSRF-Token": csrf_of(client), "Content-Type": "application/json"}
    big = b'{"action": "acknowledge", "note": "' + b"x" * SMALL_BODY_BYTES + b'"}'
    r = client.post("/api/alerts/a-big/ack", content=big, headers=headers)
    assert r.status_code == 413 and feed.produced == []
    r = client.post("/api/alerts/a-big/ack", json={"action": "acknowledge", "note": "seen"}, headers=headers)
    assert r.status_code == 202  # an ordinary one still goes through


# --- tokens with non-ASCII characters -------------------------------------------------------------


def test_tokens_are_compared_as_bytes() -> None:
    assert same_secret("abc", "abc")
    assert not same_secret("abc", "abé") and not same_secret("abc", "") and not same_secret("é", "e")


def test_a_non_ascii_bearer_token_is_a_wrong_one(client, feed) -> None:
    before = count("vigil_web_fhir_requests_total", outcome="unauthorized")
    r = client.post("/fhir", headers=[(b"Authorization", b"Bearer caf\xe9")], content=b"{}")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert count("vigil_web_fhir_requests_total", outcome="unauthorized") == before + 1
    assert feed.produced == []
    assert API_TOKEN.isascii()


def test_a_non_ascii_sign_in_form_token_is_a_wrong_one(client) -> None:
    before = count("vigil_web_logins_total", outcome="csrf")
    token = login_form_token(client)
    r = client.post("/login", data={"username": "ann", "password": "x", "csrf": "é" + token})
    assert r.status_code == 403
    assert count("vigil_web_logins_total", outcome="csrf") == before + 1


def test_a_non_ascii_csrf_header_is_a_wrong_one(client) -> None:
    sign_in(client, "ann")
    r = client.post("/logout", headers=[(b"X-CSRF-Token", b"caf\xe9"), (b"Origin", b"http://testserver")])
    assert r.status_code == 403
    assert client.get("/api/state").status_code == 200  # still signed in
