"""Alert transitions out, shared by the scoring step (scores raise, escalate and resolve alerts in
the batch that scored them) and the alert agent (acknowledgements, the wall-clock timer): each
transition on ``vigil.alerts`` and as a FHIR RiskAssessment on ``vigil.alerts.fhir``. Not an agent
module: importing it registers nothing."""

from __future__ import annotations

import json

from vigil.agents.app import alerts_fhir_topic, alerts_topic
from vigil.agents.runtime import Publisher, when_done
from vigil.infra import metrics
from vigil.schemas.alerts import Alert
from vigil.schemas.codecs.fhir_out import alert_to_risk_assessment


async def publish_alerts(publisher: Publisher, alerts: list[Alert]) -> None:
    for alert in alerts:
        await publisher.send(alerts_topic, alert.patient_id, alert.model_dump_json().encode())
        risk = alert_to_risk_assessment(alert)
        await publisher.send(alerts_fhir_topic, alert.patient_id, json.dumps(risk).encode())
        when_done(metrics.ALERTS.labels(alert.state, alert.severity).inc)  # published: once its batch is done
