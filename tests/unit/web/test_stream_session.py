"""The live stream ends with its session (defect: a stream opened before a sign-out, the user's removal,
a new password or the session's end kept sending patients' data for as long as it stayed open)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from web_builders import risk_score

from vigil.agents.web import sessions
from vigil.agents.web.app import create_app
from vigil.agents.web.auth import Authenticator, User, UserDirectory, hash_password
from vigil.agents.web.feed import WardFeed
from vigil.agents.web.routes import ward
from vigil.infra.settings import Settings
from vigil.schemas import topics


@pytest.fixture(autouse=True)
def every_batch_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stream looks at its session at most every ``SSE_SESSION_CHECK_S`` (2 s); here at once."""
    monkeypatch.setattr(ward, "SSE_SESSION_CHECK_S", 0.0)


class Stream:
    """GET /api/stream driven as uvicorn drives it: the text the app sends, as it sends it."""

    def __init__(self, app: Any, cookie: str) -> None:
        self.chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self.status = 0
        self.gone = asyncio.Event()
        self._asked = False
        headers = [(b"host", b"testserver"), (b"cookie", f"vigil_session={cookie}".encode())]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/api/stream",
            "raw_path": b"/api/stream",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        self.task = asyncio.create_task(app(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        if not self._asked:
            self._asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body" and message.get("body"):
            await self.chunks.put(message["body"])

    async def read_for(self, seconds: float, until: str | None = None) -> str:
        """What it sent within ``seconds``: less when the stream ended or once ``until`` came."""
        text = b""
        deadline = asyncio.get_running_loop().time() + seconds
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            if (self.task.done() and self.chunks.empty()) or (until is not None and until.encode() in text):
                break
            try:
                text += await asyncio.wait_for(self.chunks.get(), min(left, 0.05))
            except TimeoutError:
                continue
        return text.decode()

    async def close(self) -> None:
        self.gone.set()
        try:
            await asyncio.wait_for(self.task, 5)
        except TimeoutError:
            self.task.cancel()


def score(pid: str) -> bytes:
    return risk_score(pid, 1, 7, "high").model_dump_json().encode()


def signed_out(auth: Authenticator, token: str, ann: User) -> None:
    auth.revoke(token)


def removed(auth: Authenticator, token: str, ann: User) -> None:
    auth.directory = UserDirectory.fixed({})


def new_password(auth: Authenticator, token: str, ann: User) -> None:
    changed = User(username="ann", password_hash=hash_password("a-new-password-1"), role="clinician")
    auth.directory = UserDirectory.fixed({"ann": changed})


def expired(auth: Authenticator, token: str, ann: User) -> None:
    later = time.time() + 12 * 3600 + 60  # past one shift: the store's record has expired
    sessions.time = SimpleNamespace(time=lambda: later)  # type: ignore[assignment]


ENDS = [signed_out, removed, new_password, expired]


@pytest.fixture
def restore_clock():
    yield
    sessions.time = time  # type: ignore[assignment]


async def open_stream() -> tuple[Stream, WardFeed, Authenticator, str, User]:
    settings = Settings()
    feed = WardFeed(settings)
    feed.start(asyncio.get_running_loop())
    ann = User(username="ann", password_hash=hash_password("correct horse battery"), role="clinician")
    app = create_app(settings, feed, users={"ann": ann}, session_secret="test-secret")
    auth: Authenticator = app.state.auth
    token, _ = auth.issue(ann)
    stream = Stream(app, token)
    assert "retry: 3000" in await stream.read_for(2, until="retry: 3000")
    assert stream.status == 200
    return stream, feed, auth, token, ann


@pytest.mark.parametrize("end", ENDS, ids=lambda f: f.__name__)
def test_a_change_after_the_session_ended_is_not_sent_and_the_stream_ends(
    end: Callable[[Authenticator, str, User], None], restore_clock: None
) -> None:
    async def run() -> tuple[str, str, bool]:
        stream, feed, auth, token, ann = await open_stream()
        feed.ingest(topics.SCORES, score("p-before-the-end"))
        before = await stream.read_for(2, until="p-before-the-end")
        end(auth, token, ann)
        feed.ingest(topics.SCORES, score("p-after-the-end"))
        after = await stream.read_for(3)
        ended = stream.task.done()
        await stream.close()
        return before, after, ended

    before, after, ended = asyncio.run(run())
    assert "p-before-the-end" in before  # a signed-in stream gets the change
    assert "p-after-the-end" not in after
    assert ended


@pytest.mark.parametrize("end", ENDS, ids=lambda f: f.__name__)
def test_a_quiet_stream_ends_at_the_keepalive_after_its_session_ended(
    end: Callable[[Authenticator, str, User], None], restore_clock: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ward, "SSE_KEEPALIVE_S", 0.1)

    async def run() -> tuple[str, bool, str]:
        stream, _feed, auth, token, ann = await open_stream()
        alive = await stream.read_for(2, until=": keepalive")
        end(auth, token, ann)
        after = await stream.read_for(3)
        ended = stream.task.done()
        await stream.close()
        return alive, ended, after

    alive, ended, after = asyncio.run(run())
    assert ": keepalive" in alive  # a signed-in quiet stream is kept alive
    assert ended and ": keepalive" not in after


def test_changes_that_came_together_are_sent_together_while_signed_in() -> None:
    async def run() -> tuple[str, bool]:
        stream, feed, _auth, _token, _ann = await open_stream()
        for n in range(5):
            feed.ingest(topics.SCORES, score(f"p-batch-{n}"))
        text = await stream.read_for(2, until="p-batch-4")
        alive = not stream.task.done()
        await stream.close()
        return text, alive

    text, alive = asyncio.run(run())
    assert all(f"p-batch-{n}" in text for n in range(5)) and alive


def test_a_session_store_that_cannot_answer_does_not_end_the_stream() -> None:
    """Redis restarting for a few seconds (compose restarts it now): the re-check read "signed out",
    every ward's stream ended, and the pages, refused while Redis was away, went to the sign-in page
    or froze. The stream goes on while the store cannot say, and ends once it says signed out."""

    async def run() -> tuple[str, str, bool]:
        stream, feed, auth, token, ann = await open_stream()
        store = auth.sessions
        real_get = store.get

        def away(sid: str, strict: bool = False) -> object:
            if strict:
                raise sessions.SessionStoreUnavailable
            return None

        store.get = away  # type: ignore[method-assign]
        feed.ingest(topics.SCORES, score("p-while-redis-is-away"))
        during = await stream.read_for(2, until="p-while-redis-is-away")
        store.get = real_get  # type: ignore[method-assign]
        auth.revoke(token)
        feed.ingest(topics.SCORES, score("p-after-sign-out"))
        after = await stream.read_for(3)
        ended = stream.task.done()
        await stream.close()
        return during, after, ended

    during, after, ended = asyncio.run(run())
    assert "p-while-redis-is-away" in during
    assert "p-after-sign-out" not in after and ended
