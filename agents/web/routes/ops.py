"""Operations endpoints, no sign-in: liveness, readiness (broker, Redis, feed assignment), Prometheus."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

import vigil.infra.metrics  # noqa: F401 - registers the shared vigil_* metrics in this process
from vigil.agents.web.deps import FeedDep

router = APIRouter()


class _VigilMetricsOnly:
    """The Prometheus registry filtered to ``vigil_*`` families (no process_/python_ collectors)."""

    def collect(self) -> Iterator[Any]:
        for family in REGISTRY.collect():
            if family.name.startswith("vigil_"):
                yield family


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
    return Response(generate_latest(_VigilMetricsOnly()), media_type=CONTENT_TYPE_LATEST)  # type: ignore[arg-type]
