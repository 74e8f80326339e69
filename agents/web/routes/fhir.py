"""FHIR R4 intake over HTTP (issue 7): bearer token -> ``vigil.events.raw`` / ``vigil.deadletter``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from vigil.agents.web import intake, metrics
from vigil.agents.web.auth import same_secret
from vigil.agents.web.deps import FeedDep, SettingsDep
from vigil.agents.web.feed import WardFeed
from vigil.agents.web.intake import problem
from vigil.infra.settings import Settings

router = APIRouter()


def bearer_ok(settings: Settings, request: Request) -> bool:
    expected = settings.api_token.get_secret_value() if settings.api_token else ""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return bool(expected) and scheme.lower() == "bearer" and same_secret(expected, token.strip())


async def fhir_intake(settings: Settings, ward_feed: WardFeed, request: Request, path: str) -> Response:
    if not bearer_ok(settings, request):
        metrics.FHIR_REQUESTS.labels("unauthorized").inc()
        response = problem(401, "security", "missing or wrong bearer token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="vigil-fhir"'
        return response
    # bounded: streamed entries, per-entry dead letters, entry and body caps (agents/web/intake.py)
    return await intake.fhir_intake(request, settings, ward_feed.produce_many, path, ward_feed)


@router.post("/fhir/Observation", response_model=None)
async def fhir_observation(request: Request, settings: SettingsDep, feed: FeedDep) -> Response:
    return await fhir_intake(settings, feed, request, "/fhir/Observation")


@router.post("/fhir", response_model=None)
async def fhir_bundle(request: Request, settings: SettingsDep, feed: FeedDep) -> Response:
    return await fhir_intake(settings, feed, request, "/fhir")
