"""FHIR out: alerts as RiskAssessment and rejections as OperationOutcome, validated by fhir.resources."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.riskassessment import RiskAssessment

from vigil.schemas.alerts import Alert, AlertExplanation
from vigil.schemas.codecs.fhir_out import alert_to_risk_assessment, operation_outcome
from vigil.schemas.deadletter import Rejected
from vigil.schemas.scores import RuleScore


def make_alert(**overrides: object) -> Alert:
    fields: dict[str, object] = {
        "alert_id": "al-7f3a",
        "transition_id": "al-7f3a:escalated:2",
        "patient_id": "4420011",
        "encounter": "V77120044",
        "ward": "ICU-3",
        "state": "escalated",
        "severity": "high",
        "trigger": "news2_band:high",
        "reason": "NEWS2 8 (high): RR 24, SpO2 91, SBP 92, HR 118, temp 38.5",
        "at": datetime(2024, 3, 15, 14, 30, tzinfo=UTC),
        "hour": 29,
        "news2": RuleScore(name="NEWS2", total=8, parameters={"resp": 2, "spo2": 2}, band="high"),
        "risk": 0.81,
        "explanation": AlertExplanation(score_ids=["sc-101", "sc-102"]),
    }
    fields.update(overrides)
    return Alert(**fields)  # type: ignore[arg-type]


def test_risk_assessment_validates_and_carries_the_prediction() -> None:
    resource = alert_to_risk_assessment(make_alert())
    model = RiskAssessment.model_validate(resource)
    assert model.status == "final"
    assert model.subject.reference == "Patient/4420011"
    assert model.encounter.reference == "Encounter/V77120044"
    assert model.occurrenceDateTime == datetime(2024, 3, 15, 14, 30, tzinfo=UTC)
    prediction = model.prediction[0]
    assert float(prediction.probabilityDecimal) == pytest.approx(0.81)
    codes = {(c.system, c.code) for c in prediction.qualitativeRisk.coding}
    assert ("http://terminology.hl7.org/CodeSystem/risk-probability", "high") in codes
    assert ("urn:vigil:news2-band", "high") in codes
    assert [b.identifier.value for b in model.basis] == ["sc-101", "sc-102"]
    assert model.identifier[0].value == "al-7f3a"
    assert model.method.coding[0].code == "news2_band:high"


def test_risk_assessment_id_is_a_valid_fhir_id_and_stable_per_transition() -> None:
    first = alert_to_risk_assessment(make_alert())
    assert first["id"] == alert_to_risk_assessment(make_alert())["id"]
    assert first["id"] != alert_to_risk_assessment(make_alert(transition_id="al-7f3a:resolved:3"))["id"]
    assert alert_to_risk_assessment(make_alert(transition_id="plain-id.1"))["id"] == "plain-id.1"


def test_risk_assessment_without_model_risk_or_news2() -> None:
    resource = alert_to_risk_assessment(
        make_alert(
            risk=None,
            news2=None,
            severity="low-medium",
            encounter=None,
            explanation=AlertExplanation(),
            at=datetime(2024, 3, 15, 14, 30),
        )
    )
    model = RiskAssessment.model_validate(resource)
    assert model.prediction[0].probabilityDecimal is None
    assert model.prediction[0].qualitativeRisk.coding[0].code == "moderate"
    assert model.basis is None and model.encounter is None
    assert resource["occurrenceDateTime"] == "2024-03-15T14:30:00Z"  # naive alert time read as UTC


def test_risk_assessment_for_an_acknowledged_model_alert() -> None:
    resource = alert_to_risk_assessment(make_alert(state="acknowledged", by="rn.okafor", trigger="model:combined"))
    model = RiskAssessment.model_validate(resource)
    assert model.performer.display == "rn.okafor"
    assert model.prediction[0].outcome.text == "Sepsis or clinical deterioration"


def test_operation_outcome_validates_with_one_issue_per_rejection() -> None:
    rejected = [
        Rejected("invalid_json", "Expected value at line 1 column 1"),
        Rejected("unmapped_code", "entry[6] Observation/bmi no mapping for http://loinc.org|39156-5"),
        Rejected("missing_time", "Observation/heart-rate effectiveDateTime is a date without a time of day"),
        Rejected("something_new"),
    ]
    outcome = OperationOutcome.model_validate(operation_outcome(rejected))
    assert [i.code for i in outcome.issue] == ["structure", "code-invalid", "required", "processing"]
    assert all(i.severity == "error" for i in outcome.issue)
    assert outcome.issue[1].details.coding[0].code == "unmapped_code"
    assert outcome.issue[3].diagnostics == "something_new"


def test_operation_outcome_for_no_rejection_is_informational() -> None:
    outcome = OperationOutcome.model_validate(operation_outcome([]))
    assert [(i.severity, i.code) for i in outcome.issue] == [("information", "informational")]
