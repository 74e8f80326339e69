"""The dashboard and HTTP intake app: ``create_app(settings, feed=None)``.

Routes
  /healthz, /readyz, /metrics            no auth (liveness, readiness, Prometheus text)
  /login (GET, POST), /logout (POST)     sign-in; everything below needs a session
  /                                      the ward page (303 to /login without a session)
  /api/state, /api/stream                initial ward state (JSON) and live updates (server-sent events)
  /api/alerts/{alert_id}/ack             acknowledge/resolve: clinician role + CSRF token -> vigil.alerts.acks
  /fhir/Observation, /fhir               FHIR R4 intake (bearer token) -> vigil.events.raw / vigil.deadletter

No patient identifier is ever in a URL (rows and alerts are addressed by opaque ids) or in a log line
(patients are logged as ``patient_hash``).
"""

from __future__ import annotations

import asyncio
import hmac
import html
import json
import math
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import vigil.infra.metrics  # noqa: F401 - registers the shared vigil_* metrics in this process
from vigil.agents.web import intake, metrics
from vigil.agents.web.auth import (
    CSRF_HEADER,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Session,
    SignIn,
    User,
    UserDirectory,
    build_authenticator,
)
from vigil.agents.web.feed import KafkaWardFeed, WardFeed
from vigil.infra.logging import get_logger, patient_hash
from vigil.infra.settings import Settings, get_settings
from vigil.schemas import topics
from vigil.schemas.alerts import AlertAck

STATIC = Path(__file__).parent / "static"
FHIR_JSON = "application/fhir+json"
SSE_KEEPALIVE_S = 15.0

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


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["acknowledge", "resolve"] = "acknowledge"
    note: str | None = Field(default=None, max_length=500)


class _VigilMetricsOnly:
    """The Prometheus registry filtered to ``vigil_*`` families (no process_/python_ collectors)."""

    def collect(self) -> Iterator[Any]:
        for family in REGISTRY.collect():
            if family.name.startswith("vigil_"):
                yield family


def create_app(
    settings: Settings | None = None,
    feed: WardFeed | None = None,
    *,
    users: dict[str, User] | UserDirectory | None = None,
    session_secret: str | None = None,
    cookie_secure: bool = False,
) -> FastAPI:
    settings = settings or get_settings()
    ward_feed = feed if feed is not None else KafkaWardFeed(settings)
    redis_url = ward_feed.redis_url if isinstance(ward_feed, KafkaWardFeed) else None  # sessions shared in Redis
    auth = build_authenticator(settings, users, session_secret, cookie_secure, redis_url)
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
    app.state.feed = ward_feed
    app.state.auth = auth
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.url.path.startswith(("/api/", "/login", "/fhir")) or request.url.path == "/":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    def session_of(request: Request) -> Session | None:
        return auth.session(request.cookies.get(SESSION_COOKIE))

    def same_origin(request: Request) -> bool:
        # defence in depth beside the CSRF token: a browser always sends Origin on a cross-site POST
        origin = request.headers.get("origin")
        return origin is None or origin.split("://", 1)[-1] == request.headers.get("host")

    # --- operations ------------------------------------------------------------------------------
    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        detail = ward_feed.readiness()
        ready = all(detail.values())
        return JSONResponse({"ready": ready, **detail}, status_code=200 if ready else 503)

    @app.get("/metrics")
    def prometheus_metrics() -> Response:
        return Response(generate_latest(_VigilMetricsOnly()), media_type=CONTENT_TYPE_LATEST)  # type: ignore[arg-type]

    # --- sign-in ---------------------------------------------------------------------------------
    def login_page(error: str | None = None, status_code: int = 200) -> HTMLResponse:
        token, cookie = auth.login_csrf()
        message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
        body = LOGIN_HTML.replace("{{csrf}}", token).replace("{{message}}", message)
        response = HTMLResponse(body, status_code=status_code)
        response.set_cookie(LOGIN_CSRF_COOKIE, cookie, max_age=3600, **auth.cookie_args())
        return response

    def refused_sign_in(attempt: SignIn) -> Response:
        if attempt.retry_after_s > 0:
            metrics.LOGINS.labels("throttled").inc()
            wait = math.ceil(attempt.retry_after_s)
            response = login_page(f"Too many failed sign-ins; try again in {wait} s.", status_code=429)
            response.headers["Retry-After"] = str(wait)
            return response
        if attempt.busy:
            metrics.LOGINS.labels("busy").inc()
            response = login_page("Sign-in is busy; please try again.", status_code=503)
            response.headers["Retry-After"] = "1"
            return response
        metrics.LOGINS.labels("failed").inc()
        log.info("login_failed")  # the attempted name is not logged (it may be a password typo)
        return login_page("Unknown user or wrong password.", status_code=401)

    @app.get("/login", response_model=None)
    def login_form(request: Request) -> Response:
        if session_of(request):
            return RedirectResponse("/", status_code=303)
        return login_page()

    @app.post("/login", response_model=None)
    async def login(request: Request) -> Response:
        address = request.client.host if request.client else None
        early = auth.refuse_early(address)  # a flood is answered before its forms are parsed
        if early is not None:
            return refused_sign_in(early)
        form = await request.form()
        username, password = str(form.get("username", "")), str(form.get("password", ""))
        if not same_origin(request) or not auth.check_login_csrf(
            request.cookies.get(LOGIN_CSRF_COOKIE), str(form.get("csrf", ""))
        ):
            metrics.LOGINS.labels("csrf").inc()
            return login_page("The sign-in form expired; please try again.", status_code=403)
        attempt = await auth.sign_in(username, password, address)
        if attempt.user is None:
            return refused_sign_in(attempt)
        token, _ = await run_in_threadpool(auth.issue, attempt.user)
        metrics.LOGINS.labels("ok").inc()
        log.info("login", user=attempt.user.username, role=attempt.user.role)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(SESSION_COOKIE, token, max_age=auth.max_age_s, **auth.cookie_args())
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
        return response

    @app.post("/logout", response_model=None)
    def logout(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return JSONResponse({"detail": "not signed in"}, status_code=401)
        if not auth.check_csrf(session, request.headers.get(CSRF_HEADER)):
            return JSONResponse({"detail": "CSRF token missing or wrong"}, status_code=403)
        log.info("logout", user=session.username)
        auth.revoke(request.cookies.get(SESSION_COOKIE))  # the session ends here, not when the cookie expires
        response = JSONResponse({"signed_out": True})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # --- the ward --------------------------------------------------------------------------------
    @app.get("/", response_model=None)
    def index(request: Request) -> Response:
        if session_of(request) is None:
            return RedirectResponse("/login", status_code=303)
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/api/state", response_model=None)
    def state(request: Request) -> Response:
        session = session_of(request)
        if session is None:
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        return JSONResponse(
            {
                "user": session.username,
                "role": session.role,
                "csrf": session.csrf,
                "may_acknowledge": session.may_acknowledge,
                **ward_feed.model.snapshot(),
            }
        )

    @app.get("/api/stream", response_model=None)
    async def stream(request: Request) -> Response:
        if await run_in_threadpool(session_of, request) is None:
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        queue = ward_feed.subscribe()

        async def events() -> AsyncIterator[str]:
            try:
                yield "retry: 3000\n\n"
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
                    if "transition" in message:
                        yield f"event: transition\ndata: {json.dumps(message['transition'])}\n\n"
                    yield f"event: row\ndata: {json.dumps(message['row'])}\n\n"
            finally:
                ward_feed.unsubscribe(queue)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    @app.post("/api/alerts/{alert_id}/ack", response_model=None)
    async def acknowledge(alert_id: str, request: Request) -> Response:
        session = await run_in_threadpool(session_of, request)
        if session is None:
            return JSONResponse({"detail": "sign in first"}, status_code=401)
        if not same_origin(request) or not auth.check_csrf(session, request.headers.get(CSRF_HEADER)):
            return JSONResponse({"detail": "CSRF token missing or wrong"}, status_code=403)
        if not session.may_acknowledge:
            return JSONResponse({"detail": "the viewer role is read-only"}, status_code=403)
        try:
            body = AckRequest.model_validate_json(await request.body() or b"{}")
        except ValidationError as exc:
            return JSONResponse({"detail": exc.errors(include_input=False, include_url=False)}, status_code=422)
        target = ward_feed.model.alert_target(alert_id)
        if target is None:
            return JSONResponse({"detail": "no active alert with this id"}, status_code=404)
        patient_id, _alert = target
        ack = AlertAck(
            alert_id=alert_id,
            patient_id=patient_id,
            action=body.action,
            by=session.username,
            at=datetime.now(UTC),
            note=body.note,
        )
        try:
            await run_in_threadpool(
                ward_feed.produce, topics.ALERT_ACKS, patient_id.encode(), ack.model_dump_json().encode()
            )
        except Exception as exc:
            log.error("ack_publish_failed", error=type(exc).__name__, alert_id=alert_id)
            return JSONResponse({"detail": "could not publish the acknowledgement"}, status_code=503)
        metrics.ACKS.labels(body.action).inc()
        # the audit line (the alert agent also writes vigil.audit when it applies the ack)
        log.info(
            "alert_ack",
            user=session.username,
            role=session.role,
            action=body.action,
            alert_id=alert_id,
            patient_hash=patient_hash(patient_id),
            at=ack.at.isoformat(),
        )
        return JSONResponse(
            {"alert_id": alert_id, "action": body.action, "by": session.username, "at": ack.at.isoformat()},
            status_code=202,
        )

    # --- FHIR intake (issue 7) -------------------------------------------------------------------
    def bearer_ok(request: Request) -> bool:
        expected = settings.api_token.get_secret_value() if settings.api_token else ""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return bool(expected) and scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), expected)

    def outcome(status_code: int, body: dict[str, Any]) -> Response:
        return Response(json.dumps(body), status_code=status_code, media_type=FHIR_JSON)

    def problem(status_code: int, code: str, text: str) -> Response:
        return outcome(
            status_code,
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]},
        )

    async def fhir_intake(request: Request, path: str) -> Response:
        if not bearer_ok(request):
            metrics.FHIR_REQUESTS.labels("unauthorized").inc()
            response = problem(401, "security", "missing or wrong bearer token")
            response.headers["WWW-Authenticate"] = 'Bearer realm="vigil-fhir"'
            return response
        return await intake.fhir_intake(request, settings, ward_feed.produce_many, path)

    @app.post("/fhir/Observation", response_model=None)
    async def fhir_observation(request: Request) -> Response:
        return await fhir_intake(request, "/fhir/Observation")

    @app.post("/fhir", response_model=None)
    async def fhir_bundle(request: Request) -> Response:
        return await fhir_intake(request, "/fhir")

    return app


LOGIN_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Vigil · sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/style.css"></head>
<body class="login"><main class="login-box">
<h1>Vigil</h1><p class="muted">Clinical early warning · sign in</p>
{{message}}
<form method="post" action="/login" autocomplete="on">
<input type="hidden" name="csrf" value="{{csrf}}">
<label>User <input name="username" id="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" id="password" type="password" autocomplete="current-password" required>
</label>
<button type="submit" id="signin">Sign in</button>
</form></main></body></html>
"""
