"""The ward: the page, its initial state (JSON) and live updates (server-sent events)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from vigil.agents.web.deps import FeedDep, OptionalSessionDep, SessionDep, SettingsDep
from vigil.schemas.display import clock

router = APIRouter()
STATIC = Path(__file__).parents[1] / "static"
SSE_KEEPALIVE_S = 15.0


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
async def stream(request: Request, _session: SessionDep, feed: FeedDep, state: bool = False) -> Response:
    """Live changes. With ``?state=1`` the first event (``state``) is the ward as ``/api/state`` has it,
    taken at the instant of the subscription: every later change follows it, none is in both (the
    ward page: a state fetched apart from the stream can lose a change or lay an older card over it)."""
    queue, snapshot = feed.subscribe_with_state() if state else (feed.subscribe(), None)

    async def events() -> AsyncIterator[str]:
        try:
            yield "retry: 3000\n\n"
            if snapshot is not None:
                yield f"event: state\ndata: {json.dumps(snapshot)}\n\n"
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_S)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keepalive\n\n"
                    continue
                if message is None:
                    return
                if "status" in message:  # the header's indicators (agents/web/fleet.py)
                    yield f"event: status\ndata: {json.dumps(message['status'])}\n\n"
                    continue
                if "drift" in message:  # the wards' input drift indicator (agents/web/drift.py)
                    yield f"event: drift\ndata: {json.dumps(message['drift'])}\n\n"
                    continue
                if "left" in message:  # a discharged patient leaves the ward view (agents/web/ward.py)
                    yield f"event: left\ndata: {json.dumps(message['left'])}\n\n"
                    continue
                if "transition" in message:
                    yield f"event: transition\ndata: {json.dumps(message['transition'])}\n\n"
                if "row" in message:  # a resumed stay whose card is gone has only its feed line
                    yield f"event: row\ndata: {json.dumps(message['row'])}\n\n"
        finally:
            feed.unsubscribe(queue)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
