"""The ward: the page, its initial state (JSON) and live updates (server-sent events)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from vigil.agents.web.auth import SESSION_COOKIE
from vigil.agents.web.deps import AuthDep, FeedDep, OptionalSessionDep, SessionDep, SettingsDep
from vigil.agents.web.sessions import SessionStoreUnavailable
from vigil.schemas.display import clock

router = APIRouter()
STATIC = Path(__file__).parents[1] / "static"
SSE_KEEPALIVE_S = 15.0
SSE_SESSION_CHECK_S = 2.0  # a stream looks at its session again at most this often
# A comment keeps proxies from closing a quiet stream; the named event is what the page sees (a comment
# never reaches its script): a page that hears nothing for a few keepalives knows its stream is dead
# though still open, and says so (static/common.js, the watchdog). Sent every SSE_KEEPALIVE_S whatever
# else is sent: a page hears only the events it has a handler for (the patient page has none for drift
# or transitions), so a stream busy with those alone read as silent and was reopened every 40 s.
KEEPALIVE = ": keepalive\nevent: ping\ndata: {}\n\n"


@router.get("/", response_model=None)
def index(session: OptionalSessionDep) -> Response:
    if session is None:
        return RedirectResponse("/login", status_code=303)
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/patient/{row_id}", response_model=None)
def patient_page(row_id: str, session: OptionalSessionDep) -> Response:
    if session is None:
        return RedirectResponse("/login", status_code=303)
    return FileResponse(STATIC / "patient.html", media_type="text/html")


@router.get("/api/state", response_model=None)
def state(session: SessionDep, feed: FeedDep, settings: SettingsDep) -> Response:
    return JSONResponse(
        {
            "user": session.username,
            "role": session.role,
            "csrf": session.csrf,
            "may_acknowledge": session.may_acknowledge,
            "zone": settings.ward_timezone,
            **feed.state(),
        }
    )


@router.get("/api/patients/{row_id}", response_model=None)
def patient(row_id: str, _session: SessionDep, feed: FeedDep) -> Response:
    detail = feed.model.patient(row_id)
    if detail is None:
        ended = feed.model.ended(row_id)
        if ended is not None:  # discharged or moved out: the page says when the stay ended, and why
            at, by = ended
            body = {"detail": "the patient's stay ended", "ended_at_text": clock(at, feed.model.zone), "ended_by": by}
            return JSONResponse(body, status_code=404)
        return JSONResponse({"detail": "no such patient on this ward view"}, status_code=404)
    return JSONResponse(detail)


@router.get("/api/stream", response_model=None)
async def stream(request: Request, _session: SessionDep, auth: AuthDep, feed: FeedDep, state: bool = False) -> Response:
    """Live changes. With ``?state=1`` the first event (``state``) is the ward as ``/api/state`` has it,
    taken at the instant of the subscription: every later change follows it, none is in both (the
    ward page: a state fetched apart from the stream can lose a change or lay an older card over it).

    The session is looked at again before each batch of changes is sent and at each keepalive: a
    stream outlives its first request by hours, and one opened before a sign-out, the user's removal,
    a new password or the session's end kept sending patients' data. It then ends (the page's
    EventSource reconnects, is refused 401 and goes to the sign-in page)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    queue, snapshot = feed.subscribe_with_state() if state else (feed.subscribe(), None)

    checked = [time.monotonic()]  # the session was looked at (SessionDep) as the stream opened

    async def signed_in() -> bool:
        """At most one look-up every ``SSE_SESSION_CHECK_S``: a busy ward sends many batches a second,
        each a Redis read otherwise; a revoked session gets at most that long."""
        if time.monotonic() - checked[0] < SSE_SESSION_CHECK_S:
            return True
        try:  # the store may be Redis: off the event loop
            ok = await run_in_threadpool(auth.session, cookie, True) is not None
        except SessionStoreUnavailable:
            return True  # cannot tell now: the stream goes on (its data is Kafka's), asked again later
        checked[0] = time.monotonic()
        return ok

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 3000\n\n"
            if snapshot is not None:
                yield f"event: state\ndata: {json.dumps(snapshot)}\n\n"
            ping_at = time.monotonic() + SSE_KEEPALIVE_S
            while True:
                try:
                    first = await asyncio.wait_for(queue.get(), max(0.0, ping_at - time.monotonic()))
                except TimeoutError:
                    if await request.is_disconnected() or not await signed_in():
                        return
                    yield KEEPALIVE
                    ping_at = time.monotonic() + SSE_KEEPALIVE_S
                    continue
                batch, ended = waiting(queue, first)  # one session look-up for all that came meanwhile
                if batch and not await signed_in():
                    return
                text = "".join(server_event(message) for message in batch)
                if not ended and time.monotonic() >= ping_at:  # a busy stream pings on time too
                    text += KEEPALIVE
                    ping_at = time.monotonic() + SSE_KEEPALIVE_S
                if text:
                    yield text
                if ended:
                    return
        finally:
            feed.unsubscribe(queue)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


def waiting(
    queue: asyncio.Queue[dict[str, Any] | None], first: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], bool]:
    """``first`` and the changes the queue holds now, and whether the feed ended the stream (None)."""
    batch: list[dict[str, Any]] = []
    message = first
    while message is not None:
        batch.append(message)
        if queue.empty():
            return batch, False
        message = queue.get_nowait()
    return batch, True


def server_event(message: dict[str, Any]) -> str:
    """One change from the feed as server-sent events (a score may bring a transition and its row)."""
    if "status" in message:  # the header's indicators (agents/web/fleet.py)
        return f"event: status\ndata: {json.dumps(message['status'])}\n\n"
    if "drift" in message:  # the wards' input drift indicator (agents/web/drift.py)
        return f"event: drift\ndata: {json.dumps(message['drift'])}\n\n"
    if "left" in message:  # a discharged patient leaves the ward view (agents/web/ward.py)
        return f"event: left\ndata: {json.dumps(message['left'])}\n\n"
    text = ""
    if "transition" in message:
        text += f"event: transition\ndata: {json.dumps(message['transition'])}\n\n"
    if "row" in message:  # a resumed stay whose card is gone has only its feed line
        text += f"event: row\ndata: {json.dumps(message['row'])}\n\n"
    return text
