"""Request dependencies shared by the dashboard routers (FastAPI ``Depends``).

The app keeps its collaborators on ``app.state`` (settings, feed, authenticator); routers reach them
only through these functions, so a test can build the app with an in-memory feed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.datastructures import FormData
from starlette.types import Message

from vigil.agents.web.auth import CSRF_HEADER, SESSION_COOKIE, Authenticator, Session
from vigil.agents.web.feed import WardFeed
from vigil.infra.settings import Settings


def get_settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_feed(request: Request) -> WardFeed:
    feed: WardFeed = request.app.state.feed
    return feed


def get_auth(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


def optional_session(request: Request, auth: Annotated[Authenticator, Depends(get_auth)]) -> Session | None:
    return auth.session(request.cookies.get(SESSION_COOKIE))


def require_session(session: Annotated[Session | None, Depends(optional_session)]) -> Session:
    if session is None:
        raise HTTPException(401, "sign in first")
    return session


def same_origin(request: Request) -> bool:
    # defence in depth beside the CSRF token: a browser always sends Origin on a cross-site POST
    origin = request.headers.get("origin")
    return origin is None or origin.split("://", 1)[-1] == request.headers.get("host")


def other_origin(request: Request) -> str | None:
    """Why a state-changing request is refused for its origin (None: same origin), in one line that
    says what to check. Behind a proxy that sends its upstream's Host (nginx's default,
    ``Host $proxy_host``) every sign-in was refused as "The sign-in form expired", with nothing to
    point at the proxy."""
    if same_origin(request):
        return None
    origin, host = request.headers.get("origin", "")[:100], request.headers.get("host", "")[:100]
    return (
        f"the request came from {origin}, another origin than this server's host {host or '(none)'}: "
        "open the dashboard at its own address; behind a proxy, have it pass the Host header on "
        "(nginx: proxy_set_header Host $host;)"
    )


def require_csrf(
    request: Request,
    session: Annotated[Session, Depends(require_session)],
    auth: Annotated[Authenticator, Depends(get_auth)],
) -> Session:
    """A signed-in session whose state-changing request carries its CSRF token, from this origin."""
    if (refused := other_origin(request)) is not None:
        raise HTTPException(403, refused)
    if not auth.check_csrf(session, request.headers.get(CSRF_HEADER)):
        raise HTTPException(403, "CSRF token missing or wrong")
    return session


# A sign-in form or an acknowledgement is a few hundred bytes; without a bound, an unauthenticated
# POST /login of 48 MiB was parsed whole (or a 64 MiB file spooled to disk) before any check
SMALL_BODY_BYTES = 16 * 1024


async def bounded_body(request: Request, limit: int = SMALL_BODY_BYTES) -> bytes:
    """The request's body, refused (413) beyond ``limit`` bytes: Content-Length is checked first, and
    the bytes are counted as they arrive (a chunked body declares no length, a declared one may lie)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body is over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"the body is over {limit} bytes")
    return bytes(body)


async def bounded_form(request: Request, max_fields: int, limit: int = SMALL_BODY_BYTES) -> FormData:
    """A small form (urlencoded or multipart, no files): its body read through ``bounded_body``, then
    parsed with Starlette's limits (a file part, more than ``max_fields`` fields: 400)."""
    body = await bounded_body(request, limit)

    async def replay() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return await Request(request.scope, replay).form(max_files=0, max_fields=max_fields, max_part_size=limit)


def require_clinician(session: Annotated[Session, Depends(require_csrf)]) -> Session:
    if not session.may_acknowledge:
        raise HTTPException(403, "the viewer role is read-only")
    return session


SettingsDep = Annotated[Settings, Depends(get_settings_of)]
FeedDep = Annotated[WardFeed, Depends(get_feed)]
AuthDep = Annotated[Authenticator, Depends(get_auth)]
SessionDep = Annotated[Session, Depends(require_session)]
OptionalSessionDep = Annotated[Session | None, Depends(optional_session)]
CsrfSessionDep = Annotated[Session, Depends(require_csrf)]
ClinicianDep = Annotated[Session, Depends(require_clinician)]
