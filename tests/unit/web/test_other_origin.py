"""A request refused for its origin says so: behind a proxy that sends its upstream's Host (nginx's
default), every sign-in was refused as "The sign-in form expired", and an acknowledgement or a
sign-out as a wrong CSRF token, with nothing pointing at the proxy."""

from __future__ import annotations

import re

from web_builders import PASSWORD, csrf_of, sign_in

PROXIED = {"host": "127.0.0.1:8000", "origin": "https://ward.example"}  # Host $proxy_host


def login_form_token(client) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)


def test_a_sign_in_through_a_proxy_that_rewrites_host_says_what_to_check(client) -> None:
    form = {"csrf": login_form_token(client), "username": "ann", "password": PASSWORD}
    r = client.post("/login", data=form, headers=PROXIED, follow_redirects=False)
    assert r.status_code == 403 and "vigil_session" not in client.cookies
    said = re.search(r'role="alert">([^<]+)', r.text).group(1)
    assert "expired" not in said and "another origin" in said and "proxy_set_header Host $host;" in said
    form["csrf"] = login_form_token(client)
    passed_on = {"host": "ward.example", "origin": "https://ward.example"}  # Host $host
    assert client.post("/login", data=form, headers=passed_on, follow_redirects=False).status_code == 303


def test_an_expired_sign_in_form_is_still_called_expired(client) -> None:
    login_form_token(client)
    r = client.post("/login", data={"csrf": "stale", "username": "ann", "password": PASSWORD})
    assert r.status_code == 403 and "The sign-in form expired" in r.text


def test_an_acknowledgement_or_sign_out_from_another_origin_says_so(client, feed) -> None:
    sign_in(client, "ann")
    csrf = csrf_of(client)
    r = client.post(
        "/api/alerts/alert-1/ack", json={"action": "acknowledge"}, headers={**PROXIED, "X-CSRF-Token": csrf}
    )
    assert r.status_code == 403 and "another origin" in r.json()["detail"] and feed.produced == []
    r = client.post("/logout", headers={**PROXIED, "X-CSRF-Token": csrf})
    assert r.status_code == 403 and "proxy_set_header Host $host;" in r.json()["detail"]
    assert client.get("/api/state").status_code == 200  # not signed out
    r = client.post("/logout", headers={"X-CSRF-Token": "wrong"})
    assert r.status_code == 403 and r.json()["detail"] == "CSRF token missing or wrong"
