"""FHIR R4 intake over HTTP (issue 7): bearer token -> ``vigil.events.raw`` / ``vigil.deadletter``."""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from vigil.agents.web import metrics
from vigil.agents.web.deps import FeedDep, SettingsDep
from vigil.agents.web.feed import WardFeed
from vigil.infra.logging import get_logger
from vigil.infra.settings import Settings
from vigil.schemas import topics
from vigil.schemas.codecs.fhir import MAX_PAYLOAD_BYTES, decode_fhir
from vigil.schemas.codecs.fhir_out import operation_outcome
from vigil.schemas.deadletter import DeadLetter, Source

router = APIRouter()
log = get_logger("vigil.web")
FHIR_JSON = "application/fhir+json"


def bearer_ok(settings: Settings, request: Request) -> bool:
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


async def fhir_intake(settings: Settings, ward_feed: WardFeed, request: Request, path: str) -> Response:
    if not bearer_ok(settings, request):
        metrics.FHIR_REQUESTS.labels("unauthorized").inc()
        response = problem(401, "security", "missing or wrong bearer token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="vigil-fhir"'
        return response
    body = await request.body()
    if len(body) > MAX_PAYLOAD_BYTES:
        metrics.FHIR_REQUESTS.labels("too_large").inc()
        return problem(413, "too-costly", f"payload over {MAX_PAYLOAD_BYTES} bytes")
    result = await run_in_threadpool(decode_fhir, body)
    records = [(topics.EVENTS_RAW, e.patient_id.encode(), e.model_dump_json().encode()) for e in result.events]
    now = datetime.now(UTC)
    records += [
        (
            topics.DEADLETTER,
            b"http-fhir",
            DeadLetter.of(r.at(Source(topic=f"http:{path}", original=body)), now).model_dump_json().encode(),
        )
        for r in result.rejected
    ]
    try:
        if records:
            await run_in_threadpool(ward_feed.produce_many, records)
    except Exception as exc:
        metrics.FHIR_REQUESTS.labels("unavailable").inc()
        log.error("fhir_publish_failed", error=type(exc).__name__)
        return problem(503, "transient", "the event stream is unavailable; retry later")
    metrics.FHIR_EVENTS.inc(len(result.events))
    summary = operation_outcome(result.rejected)
    note = f"accepted {len(result.events)} events, rejected {len(result.rejected)}, ignored {len(result.ignored)}"
    if result.unknown_codes:
        common = result.unknown_codes.most_common(20)
        note += "; unknown codes: " + ", ".join(f"{c} x{n}" for c, n in common)
    if result.rejected or not result.events:
        summary["issue"].append({"severity": "information", "code": "informational", "diagnostics": note})
    else:
        summary["issue"][0]["diagnostics"] = note
    if not result.events:
        metrics.FHIR_REQUESTS.labels("rejected").inc()
        if not result.rejected:
            summary["issue"].insert(
                0,
                {
                    "severity": "error",
                    "code": "not-found",
                    "diagnostics": "nothing in the payload maps to a Vigil event",
                },
            )
        log.info("fhir_rejected", path=path, rejected=len(result.rejected), ignored=len(result.ignored))
        return outcome(400, summary)
    metrics.FHIR_REQUESTS.labels("accepted").inc()
    log.info("fhir_accepted", path=path, events=len(result.events), rejected=len(result.rejected))
    return outcome(201 if not result.rejected else 200, summary)


@router.post("/fhir/Observation", response_model=None)
async def fhir_observation(request: Request, settings: SettingsDep, feed: FeedDep) -> Response:
    return await fhir_intake(settings, feed, request, "/fhir/Observation")


@router.post("/fhir", response_model=None)
async def fhir_bundle(request: Request, settings: SettingsDep, feed: FeedDep) -> Response:
    return await fhir_intake(settings, feed, request, "/fhir")
