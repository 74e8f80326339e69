"""Vigil -> FHIR R4: alerts as ``RiskAssessment`` (published on ``vigil.alerts.fhir``) and dead-letter
reasons as ``OperationOutcome`` (the answer of ``POST /fhir`` and ``POST /fhir/Observation`` on errors).

Both return plain JSON-ready dicts that validate against fhir.resources' R4B models (the R4 wire
format for these resources; see ``schemas.codecs.fhir``). The tests construct the models from them.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from typing import Any, Final

from vigil.schemas.alerts import Alert
from vigil.schemas.deadletter import Rejected

VIGIL_ALERT_SYSTEM: Final = "urn:vigil:alert"
VIGIL_SCORE_SYSTEM: Final = "urn:vigil:score"
VIGIL_NEWS2_BAND_SYSTEM: Final = "urn:vigil:news2-band"
VIGIL_ALERT_STATE_SYSTEM: Final = "urn:vigil:alert-state"
VIGIL_DEADLETTER_SYSTEM: Final = "urn:vigil:deadletter-reason"
RISK_PROBABILITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/risk-probability"

# NEWS2 clinical-risk bands (RCP NEWS2 2017, chart 4) -> HL7 risk-probability codes. "low-medium"
# (a single parameter scoring 3) is still low aggregate risk but needs an urgent ward review:
# it maps to "moderate" so a consumer that only reads the HL7 code does not under-call it.
_BAND_TO_RISK_PROBABILITY: Final[dict[str, tuple[str, str]]] = {
    "low": ("low", "Low likelihood"),
    "low-medium": ("moderate", "Moderate likelihood"),
    "medium": ("moderate", "Moderate likelihood"),
    "high": ("high", "High likelihood"),
}

# NEWS2 bands and alert severities on one scale, so an alert is published at the higher of the two
_BAND_RANK: Final[dict[str, int]] = {"low": 0, "low-medium": 1, "medium": 2, "high": 3}

# The FHIR id grammar (R4 and R5 ``id``): matched whole (``fullmatch``: ``$`` would let a trailing
# newline through)
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def alert_to_risk_assessment(alert: Alert) -> dict[str, Any]:
    """One alert transition as a FHIR R4 ``RiskAssessment``.

    The resource id derives from ``transition_id``, so a replayed transition updates the same
    resource instead of creating a duplicate; ``identifier`` carries the alert id that ties the
    transitions of one alert together, and the ``urn:vigil:alert-state`` extension says which
    transition this is (a resolution included: docs/interop.md, "FHIR out: RiskAssessment")."""
    prediction: dict[str, Any] = {"outcome": {"text": _outcome_text(alert.trigger)}}
    qualitative = _qualitative_risk(alert)
    if qualitative is not None:
        prediction["qualitativeRisk"] = qualitative
    if alert.risk is not None:
        # RiskAssessment ras-2: probabilityDecimal must be <= 100 (it is a 0..1 probability here)
        prediction["probabilityDecimal"] = round(min(max(float(alert.risk), 0.0), 1.0), 6)
    prediction["rationale"] = alert.reason[:1000] or alert.trigger

    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "id": _fhir_id(alert.transition_id),
        "extension": [
            {
                "url": VIGIL_ALERT_STATE_SYSTEM,
                "valueCoding": {
                    "system": VIGIL_ALERT_STATE_SYSTEM,
                    "code": alert.state,
                    "display": f"Alert {alert.state}",
                },
            }
        ],
        "identifier": [{"system": VIGIL_ALERT_SYSTEM, "value": alert.alert_id}],
        # final for every transition, a resolution included: each transition is a resource of its own
        # (its id from transition_id), complete when published and never changed after. amended or
        # corrected would say an earlier resource was changed, cancelled that the assessment was never
        # completed, entered-in-error that it was wrong; none is what a resolution means.
        "status": "final",
        "method": {
            "coding": [{"system": "urn:vigil:method", "code": alert.trigger}],
            "text": "Vigil early warning: NEWS2 (RCP 2017) and model risk scores",
        },
        "code": {"text": "Clinical deterioration / sepsis early warning"},
        "subject": _reference("Patient", alert.patient_id),
        "occurrenceDateTime": _instant(alert.at),
        "prediction": [prediction],
        "note": [{"text": f"alert {alert.state}: {alert.reason}"[:1000]}],
    }
    if alert.encounter:
        resource["encounter"] = _reference("Encounter", alert.encounter)
    if alert.by and alert.state in ("acknowledged", "resolved"):
        resource["performer"] = {"display": alert.by}
    basis = [
        {
            "identifier": {"system": VIGIL_SCORE_SYSTEM, "value": score_id},
            "display": f"Vigil score {score_id}",
        }
        for score_id in alert.explanation.score_ids
    ]
    if basis:
        resource["basis"] = basis
    return resource


def _qualitative_risk(alert: Alert) -> dict[str, Any] | None:
    """The HL7 risk-probability code and the NEWS2 band behind it.

    While the alert is active (open, escalated, acknowledged) the risk is the higher of its severity
    and the NEWS2 band of the score at hand: a model-raised medium alert is not "low" because NEWS2
    is. A resolution asserts no alert-level risk: it carries the band of the score that resolved it,
    if one did, and nothing when a clinician or a discharge resolved it (no score at hand). The NEWS2
    band coding is there only when a NEWS2 band is."""
    news2 = alert.news2
    band = news2.band if news2 is not None else None
    levels = [band] if alert.state == "resolved" else [alert.severity, band]
    level = max((b for b in levels if b), key=_BAND_RANK.__getitem__, default=None)
    coding: list[dict[str, str]] = []
    if level is not None:
        risk_code, risk_display = _BAND_TO_RISK_PROBABILITY[level]
        coding.append({"system": RISK_PROBABILITY_SYSTEM, "code": risk_code, "display": risk_display})
    if band is not None:
        coding.append({"system": VIGIL_NEWS2_BAND_SYSTEM, "code": band, "display": f"NEWS2 {band} clinical risk"})
    text = [] if alert.state == "resolved" else [f"alert severity {alert.severity}"]
    if news2 is not None:
        text.append(f"NEWS2 {news2.total}" + (f" ({band})" if band else ""))
    if not text:  # a resolution without a score: no band either, so no coding
        return None
    return {"coding": coding, "text": "; ".join(text)} if coding else {"text": "; ".join(text)}


def _reference(resource_type: str, value: str) -> dict[str, Any]:
    """A reference to ``resource_type/value`` when ``value`` is a FHIR id, else a logical reference by
    identifier. Vigil's patient id is what the feed named, often an MRN (HL7 PID-3, a FHIR
    ``subject.identifier``) rather than the Patient's logical id, and one outside the id grammar
    (``MRN:0042/7``) would make the literal reference invalid."""
    if _FHIR_ID.fullmatch(value):
        return {"reference": f"{resource_type}/{value}"}
    return {"type": resource_type, "identifier": {"value": value}}


def _outcome_text(trigger: str) -> str:
    if trigger.startswith("model:sepsis"):
        return "Sepsis"
    if trigger.startswith("model:"):
        return "Sepsis or clinical deterioration"
    return "Clinical deterioration (NEWS2)"


def _fhir_id(value: str) -> str:
    if _FHIR_ID.fullmatch(value):
        return value
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def _instant(at: datetime) -> str:
    # FHIR dateTime with a time must carry an offset. Alert times are aware and UTC (schemas.times);
    # one built without validation (model_construct) and naive is read as UTC, Vigil's convention
    aware = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- OperationOutcome ---------------------------------------------------------------------------

# dead-letter reason -> FHIR issue-type code (http://hl7.org/fhir/issue-type)
_ISSUE_CODES: Final[dict[str, str]] = {
    "invalid_json": "structure",
    "parse_error": "structure",
    "schema": "structure",
    "unsupported_resource": "not-supported",
    "unsupported_message": "not-supported",
    "unmapped_code": "code-invalid",
    "unknown_code": "code-invalid",
    "unit": "value",
    "out_of_range": "value",
    "no_value": "required",
    "missing_dose": "required",
    "missing_subject": "required",
    "missing_time": "required",
    "no_observations": "required",
    "not_final": "business-rule",
    "retracted": "business-rule",
    "clock_skew": "business-rule",
    "empty": "required",
    "too_large": "too-costly",
    "internal": "exception",
    # an HL7v2 patient merge (ADT^A40...): Vigil does not move a stay between patient ids
    "adt_merge": "not-supported",
    # the scoring step's (a stay's rules): never in an HTTP answer today, named as docs/interop.md does
    "stay_ended": "business-rule",
    "unknown_stay": "business-rule",
    "no_open_stay": "business-rule",
    "other_encounter": "business-rule",
    "late_discharge": "business-rule",
    "outside_window": "business-rule",
    "duplicate": "duplicate",
}


def operation_outcome(rejected: list[Rejected]) -> dict[str, Any]:
    """Rejections as a FHIR ``OperationOutcome`` (one issue each); with none, one informational issue."""
    if not rejected:
        return {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational", "diagnostics": "accepted"}],
        }
    issues = []
    for item in rejected:
        issues.append(
            {
                "severity": "error",
                "code": _ISSUE_CODES.get(item.reason, "processing"),
                "details": {
                    "coding": [{"system": VIGIL_DEADLETTER_SYSTEM, "code": item.reason}],
                    "text": item.reason,
                },
                "diagnostics": (f"{item.reason}: {item.detail}" if item.detail else item.reason)[:1000],
            }
        )
    return {"resourceType": "OperationOutcome", "issue": issues}
