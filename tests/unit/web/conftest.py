"""Fixtures for the dashboard unit tests: an app on the in-memory feed (no broker)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from web_builders import API_TOKEN, PASSWORD

from vigil.agents.web.auth import User, hash_password
from vigil.agents.web.feed import WardFeed
from vigil.infra.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings(api_token=API_TOKEN)


@pytest.fixture
def users() -> dict[str, User]:
    hashed = hash_password(PASSWORD)
    return {
        "ann": User(username="ann", password_hash=hashed, role="clinician"),
        "vic": User(username="vic", password_hash=hashed, role="viewer"),
    }


@pytest.fixture
def feed(settings: Settings) -> WardFeed:
    return WardFeed(settings)


@pytest.fixture
def client(settings, feed, users):
    from vigil.agents.web.app import create_app

    with TestClient(create_app(settings, feed, users=users, session_secret="test-secret")) as c:
        yield c
