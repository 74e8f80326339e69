"""Alert transitions out, shared by the scoring step (scores raise, escalate and resolve alerts in
the batch that scored them) and the alert agent (acknowledgements, the wall-clock timer): each
transition on ``vigil.alerts`` and as a FHIR RiskAssessment on ``vigil.alerts.fhir``. Not an agent
module: importing it registers nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

from vigil.agents.app import alerts_fhir_topic, alerts_topic
from vigil.agents.runtime import Publisher, runtime
from vigil.infra import metrics
from vigil.models.window import PatientWindow
from vigil.schemas.alerts import Alert
from vigil.schemas.codecs.fhir_out import alert_to_risk_assessment


async def publish_alerts(publisher: Publisher, alerts: list[Alert]) -> None:
    for alert in alerts:
        await publisher.send(alerts_topic, alert.patient_id, alert.model_dump_json().encode())
        risk = alert_to_risk_assessment(alert)
        await publisher.send(alerts_fhir_topic, alert.patient_id, json.dumps(risk).encode())
        metrics.ALERTS.labels(alert.state, alert.severity).inc()


async def explain_raised(alerts: list[Alert], windows: Mapping[str, PatientWindow]) -> list[Alert]:
    """Opening or escalating an alert asks a clinician to act: attach the full explanation
    (``Runtime.explain_fully``, from the patient's window at that moment), which the per-score path
    skips for speed."""
    rt = runtime()
    raised = [a for a in alerts if a.state in ("open", "escalated") and a.risk is not None]
    if not raised or rt.bundle is None:
        return alerts
    explained: dict[str, Alert] = {}
    for alert in raised:
        window = windows.get(alert.patient_id)
        if window is None or window.anchor_s is None:
            continue
        scores = await asyncio.to_thread(rt.explain_fully, window.matrix(alert.hour), window.statics())
        combined = next((s for s in scores if s.model == "combined"), None)
        if combined is not None and combined.top_features:
            explanation = alert.explanation.model_copy(update={"top_features": combined.top_features})
            explained[alert.transition_id] = alert.model_copy(update={"explanation": explanation})
    return [explained.get(a.transition_id, a) for a in alerts]
