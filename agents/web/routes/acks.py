"""Acknowledge (with a note), snooze (with a reason) or resolve an alert: clinician role + CSRF token ->
``vigil.alerts.acks``.

The URL carries only the opaque alert id; the server looks up the patient (the record's key) itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vigil.agents.web import metrics
from vigil.agents.web.deps import ClinicianDep, FeedDep, bounded_body
from vigil.infra.logging import get_logger, patient_hash
from vigil.schemas import topics
from vigil.schemas.alerts import AlertAck

router = APIRouter()
log = get_logger("vigil.web")


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["acknowledge", "resolve", "snooze"] = "acknowledge"
    note: str | None = Field(default=None, max_length=500)
    snooze_min: int | None = None


def _unprocessable(exc: ValidationError) -> JSONResponse:
    return JSONResponse({"detail": exc.errors(include_input=False, include_url=False, include_context=False)}, 422)


@router.post("/api/alerts/{alert_id}/ack", response_model=None)
async def acknowledge(alert_id: str, request: Request, session: ClinicianDep, feed: FeedDep) -> Response:
    try:
        body = AckRequest.model_validate_json(await bounded_body(request) or b"{}")  # 413 past 16 KiB
    except ValidationError as exc:
        return JSONResponse(
            {"detail": exc.errors(include_input=False, include_url=False, include_context=False)}, status_code=422
        )
    target = feed.model.alert_target(alert_id)
    if target is None:
        return JSONResponse({"detail": "no active alert with this id"}, status_code=404)
    patient_id, _alert = target
    note = (body.note or "").strip() or None
    try:
        ack = AlertAck(
            alert_id=alert_id,
            patient_id=patient_id,
            action=body.action,
            by=session.username,
            at=datetime.now(UTC),
            note=note,
            snooze_min=body.snooze_min,
        )
    except ValidationError as exc:  # a snooze without a length or a reason; a note with a control character
        return JSONResponse(
            {"detail": exc.errors(include_input=False, include_url=False, include_context=False)}, status_code=422
        )
    try:
        await run_in_threadpool(feed.produce, topics.ALERT_ACKS, patient_id.encode(), ack.model_dump_json().encode())
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
        {
            "alert_id": alert_id,
            "action": body.action,
            "by": session.username,
            "at": ack.at.isoformat(),
            "note": ack.note,
            "snooze_min": ack.snooze_min,
        },
        status_code=202,
    )
