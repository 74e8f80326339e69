"""The dashboard and HTTP intake app: ``create_app(settings, feed=None)``.

Routers (``routes/``), each on its own job; shared request dependencies in ``deps.py``:
  ops      /healthz, /readyz, /metrics            no auth (liveness, readiness, Prometheus text)
  signin   /login (GET, POST), /logout (POST)     sign-in; everything below needs a session
  ward     /, /api/state, /api/stream             the ward page, its state (JSON) and live updates (SSE)
  acks     /api/alerts/{alert_id}/ack             acknowledge/resolve: clinician + CSRF -> vigil.alerts.acks
  fhir     /fhir/Observation, /fhir               FHIR R4 intake (bearer token) -> vigil.events.raw / deadletter

No patient identifier is ever in a URL (rows and alerts are addressed by opaque ids) or in a log line
(patients are logged as ``patient_hash``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from vigil.agents.web.auth import User, UserDirectory, build_authenticator
from vigil.agents.web.feed import WardFeed
from vigil.agents.web.routes import acks, fhir, ops, signin, ward
from vigil.infra.logging import get_logger
from vigil.infra.settings import Settings, get_settings

log = get_logger("vigil.web")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer Chromium sends `Origin: null` on form posts
    "Referrer-Policy": "same-origin",
}
NO_STORE_PREFIXES = ("/api/", "/login", "/fhir", "/patient")


def create_app(
    settings: Settings | None = None,
    feed: WardFeed | None = None,
    *,
    users: dict[str, User] | UserDirectory | None = None,
    session_secret: str | None = None,
    cookie_secure: bool = False,
) -> FastAPI:
    settings = settings or get_settings()
    from vigil.agents.web.kafka_feed import KafkaWardFeed

    ward_feed = feed if feed is not None else KafkaWardFeed(settings)
    # sessions live in the feed's Redis (shared by replicas); an in-memory test feed keeps them here
    shared_sessions = isinstance(ward_feed, KafkaWardFeed)
    auth = build_authenticator(settings, users, session_secret, cookie_secure, shared_sessions)
    if not auth.users:
        log.warning("no_users", hint="add one with `vigil users add NAME --role clinician`")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ward_feed.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            await run_in_threadpool(ward_feed.stop)

    app = FastAPI(title="Vigil", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.feed = ward_feed
    app.state.auth = auth
    app.mount("/static", StaticFiles(directory=ward.STATIC), name="static")
    app.middleware("http")(security_headers)
    for module in (ops, signin, ward, acks, fhir):
        app.include_router(module.router)
    return app


async def security_headers(request: Request, call_next: Any) -> Response:
    response: Response = await call_next(request)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.url.path.startswith(NO_STORE_PREFIXES) or request.url.path == "/":
        response.headers.setdefault("Cache-Control", "no-store")
    if request.url.scheme == "https":  # served over TLS (vigil serve --tls-cert): browsers keep to it
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
