"""Sign-in and sign-out: the login form (double-submit CSRF token), session cookie, audit lines."""

from __future__ import annotations

import html
import math

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from vigil.agents.web import metrics
from vigil.agents.web.auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE, Authenticator, SignIn
from vigil.agents.web.deps import AuthDep, OptionalSessionDep, bounded_form, other_origin, require_csrf, require_session
from vigil.agents.web.sessions import SessionStoreUnavailable
from vigil.infra.logging import get_logger

router = APIRouter()
log = get_logger("vigil.web")
LOGIN_FIELDS = 8  # the form has three (csrf, username, password)
STORE_RETRY_AFTER_S = 5  # the session store (Redis) did not answer: its clients time out after 1 s


def login_page(auth: Authenticator, error: str | None = None, status_code: int = 200) -> HTMLResponse:
    token, cookie = auth.login_csrf()
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    body = LOGIN_HTML.replace("{{csrf}}", token).replace("{{message}}", message)
    response = HTMLResponse(body, status_code=status_code)
    response.set_cookie(LOGIN_CSRF_COOKIE, cookie, max_age=3600, **auth.cookie_args())
    return response


@router.get("/login", response_model=None)
def login_form(auth: AuthDep, session: OptionalSessionDep) -> Response:
    if session is not None:
        return RedirectResponse("/", status_code=303)
    return login_page(auth)


def refused_sign_in(auth: Authenticator, attempt: SignIn) -> Response:
    if attempt.retry_after_s > 0:
        metrics.LOGINS.labels("throttled").inc()
        wait = math.ceil(attempt.retry_after_s)
        response = login_page(auth, f"Too many failed sign-ins; try again in {wait} s.", status_code=429)
        response.headers["Retry-After"] = str(wait)
        return response
    if attempt.busy:
        metrics.LOGINS.labels("busy").inc()
        response = login_page(auth, "Sign-in is busy; please try again.", status_code=503)
        response.headers["Retry-After"] = "1"
        return response
    metrics.LOGINS.labels("failed").inc()
    log.info("login_failed")  # the attempted name is not logged (it may be a password typo)
    return login_page(auth, "Unknown user or wrong password.", status_code=401)


@router.post("/login", response_model=None)
async def login(request: Request, auth: AuthDep) -> Response:
    address = request.client.host if request.client else None
    early = auth.refuse_early(address)  # a flood is answered before its forms are parsed
    if early is not None:
        return refused_sign_in(auth, early)
    form = await bounded_form(request, LOGIN_FIELDS)  # 413 past 16 KiB, 400 with a file
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    if (elsewhere := other_origin(request)) is not None:  # not an expired form: a proxy's Host, another site
        metrics.LOGINS.labels("other_origin").inc()
        return login_page(auth, f"Sign-in refused: {elsewhere}.", status_code=403)
    if not auth.check_login_csrf(request.cookies.get(LOGIN_CSRF_COOKIE), str(form.get("csrf", ""))):
        metrics.LOGINS.labels("csrf").inc()
        return login_page(auth, "The sign-in form expired; please try again.", status_code=403)
    attempt = await auth.sign_in(username, password, address)  # back-off, bounded argon2
    if attempt.user is None:
        return refused_sign_in(auth, attempt)
    try:
        token, _ = await run_in_threadpool(auth.issue, attempt.user)
    except SessionStoreUnavailable:  # Redis down: a 500 before, with no hint when to come back
        metrics.LOGINS.labels("unavailable").inc()
        refused = login_page(auth, "Sign-in is unavailable for a moment; please try again.", status_code=503)
        refused.headers["Retry-After"] = str(STORE_RETRY_AFTER_S)
        return refused
    metrics.LOGINS.labels("ok").inc()
    log.info("login", user=attempt.user.username, role=attempt.user.role)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(SESSION_COOKIE, token, max_age=auth.max_age_s, **auth.cookie_args())
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/")
    return response


@router.post("/logout", response_model=None)
def logout(request: Request, auth: AuthDep) -> Response:
    """End the session (401 without one, 403 without its CSRF token). The session is read strictly:
    read as the other routes read it, a store that did not answer (Redis restarting) read as signed out,
    the sign-out was answered 401 before it was tried, the page went to the sign-in page, and the
    session was valid again once Redis was back. Now that is a 503: the page says the sign-out failed."""
    cookie = request.cookies.get(SESSION_COOKIE)
    try:
        session = require_csrf(request, require_session(auth.session(cookie, strict=True)), auth)
        auth.revoke(cookie)  # the session ends here, on every replica
    except SessionStoreUnavailable:  # not ended: the cookie is kept, the page may sign out again
        return JSONResponse(
            {"detail": "the session store is unavailable; try again"},
            status_code=503,
            headers={"Retry-After": str(STORE_RETRY_AFTER_S)},
        )
    log.info("logout", user=session.username)
    response = JSONResponse({"signed_out": True})
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


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
