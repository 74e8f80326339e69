"""Whose X-Forwarded-For ``vigil serve`` believes: only the proxies ``VIGIL_WEB__TRUSTED_PROXIES`` names.

uvicorn's default believes any peer on loopback: behind a local proxy that passes the client's header
on, a guesser named a new address at each try and the per-address sign-in back-off never started."""

from __future__ import annotations

import re

import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import ValidationError

from vigil.agents.web.app import create_app
from vigil.agents.web.feed import WardFeed
from vigil.cli.serve import proxy_options
from vigil.infra.settings import Settings, WebSettings


def served(settings: Settings, users) -> TestClient:
    """The app as ``vigil serve`` hands it to uvicorn (its middleware included), a peer on loopback."""
    config = uvicorn.Config(create_app(settings, WardFeed(settings), users=users), **proxy_options(settings.web))
    config.load()
    return TestClient(config.loaded_app, client=("127.0.0.1", 40000))


def spray(client: TestClient, tries: int) -> list[int]:
    """Wrong passwords on new names, each from an address the request claims for itself."""
    codes = []
    for n in range(tries):
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
        r = client.post(
            "/login",
            data={"username": f"guess{n}", "password": "x", "csrf": token},
            headers={"X-Forwarded-For": f"198.51.100.{n}"},
            follow_redirects=False,
        )
        codes.append(r.status_code)
    return codes


def test_by_default_no_proxy_is_believed_and_the_address_backs_off(users) -> None:
    settings = Settings(web=WebSettings(login_free_failures=1))  # an address: 4 free failures
    assert proxy_options(settings.web) == {"proxy_headers": False}
    with served(settings, users) as client:
        codes = spray(client, 6)
    assert codes[:4] == [401] * 4 and codes[-1] == 429


def test_a_listed_proxy_is_believed(users) -> None:
    settings = Settings(web=WebSettings(login_free_failures=1, trusted_proxies=("127.0.0.1",)))
    with served(settings, users) as client:
        codes = spray(client, 6)
    assert codes == [401] * 6  # each client its own address, as the proxy says


def test_trusted_proxies_are_addresses_or_networks() -> None:
    assert WebSettings(trusted_proxies=("10.0.4.7", "10.1.0.0/16", "::1")).trusted_proxies[1] == "10.1.0.0/16"
    for wrong in ("*", "proxy.example.org", "10.1.0.5/16"):  # the last matches nothing in uvicorn
        with pytest.raises(ValidationError, match="not an IP address or network"):
            WebSettings(trusted_proxies=(wrong,))


def test_trusted_proxies_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_WEB__TRUSTED_PROXIES", '["10.0.4.7"]')
    assert proxy_options(Settings().web) == {"proxy_headers": True, "forwarded_allow_ips": ["10.0.4.7"]}
