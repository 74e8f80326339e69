"""JSON Schema for every topic, for integrators and monitoring systems."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from vigil.schemas import topics
from vigil.schemas.alerts import Alert, AlertAck
from vigil.schemas.deadletter import DeadLetter
from vigil.schemas.drift import WardDrift
from vigil.schemas.events import PatientEvent
from vigil.schemas.scores import RiskScore
from vigil.schemas.stays import StayRecords

TOPIC_SCHEMAS: dict[str, type[BaseModel]] = {
    topics.EVENTS_RAW: PatientEvent,
    topics.EVENTS: PatientEvent,
    topics.SCORES: RiskScore,
    topics.ALERTS: Alert,
    topics.ALERT_ACKS: AlertAck,
    topics.DEADLETTER: DeadLetter,
    topics.DRIFT: WardDrift,
    topics.STAYS: StayRecords,
}


def _extra_schemas() -> dict[str, type[BaseModel]]:
    extra: dict[str, type[BaseModel]] = {}
    try:
        from vigil.schemas.treatment import TreatmentPlan, TreatmentScore

        extra[topics.TREATMENT_REQUESTS] = TreatmentPlan
        extra[topics.TREATMENT_SCORES] = TreatmentScore
    except ImportError:
        pass
    return extra


def export_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for topic, model in {**TOPIC_SCHEMAS, **_extra_schemas()}.items():
        schema = model.model_json_schema()
        schema["$id"] = f"https://vigil.example/schemas/{topic}.schema.json"
        schema["x-topic"] = topic
        path = directory / f"{topic}.schema.json"
        path.write_text(json.dumps(schema, indent=2) + "\n")
        written.append(path)
    return written
