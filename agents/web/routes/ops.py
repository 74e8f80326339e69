"""Operations endpoints, no sign-in: liveness, readiness (broker, Redis, feed assignment), Prometheus."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vigil.agents.web.deps import FeedDep
from vigil.infra.metrics import registry_outside_worker

router = APIRouter()
# the vigil_* families (no process_/python_ collectors), less the worker's own gauges
VIGIL_METRICS = registry_outside_worker("vigil_")


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(feed: FeedDep) -> JSONResponse:
    detail = feed.readiness()
    ready = all(detail.values())
    return JSONResponse({"ready": ready, **detail}, status_code=200 if ready else 503)


@router.get("/metrics")
def prometheus_metrics() -> Response:
    return Response(generate_latest(VIGIL_METRICS), media_type=CONTENT_TYPE_LATEST)
