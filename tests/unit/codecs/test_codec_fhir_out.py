"""FHIR out: alerts as RiskAssessment and rejections as OperationOutcome, validated by fhir.resources."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.riskassessment import RiskAssessment
from fhir.resources.riskassessment import RiskAssessment as RiskAssessmentR5

from vigil.schemas.alerts import Alert, AlertExplanation
from vigil.schemas.codecs import fhir_out
from vigil.schemas.codecs.fhir_out import (
    RISK_PROBABILITY_SYSTEM,
    VIGIL_ALERT_STATE_SYSTEM,
    VIGIL_NEWS2_BAND_SYSTEM,
    alert_to_risk_assessment,
    operation_outcome,
)
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
            at=datetime(2024, 3, 15, 16, 30, tzinfo=timezone(timedelta(hours=2))),
        )
    )
    model = RiskAssessment.model_validate(resource)
    assert model.prediction[0].probabilityDecimal is None
    assert model.prediction[0].qualitativeRisk.coding[0].code == "moderate"
    assert model.basis is None and model.encounter is None
    assert resource["occurrenceDateTime"] == "2024-03-15T14:30:00Z"  # the alert's time, in UTC


def test_risk_assessment_for_an_acknowledged_model_alert() -> None:
    resource = alert_to_risk_assessment(make_alert(state="acknowledged", by="rn.okafor", trigger="model:combined"))
    model = RiskAssessment.model_validate(resource)
    assert model.performer.display == "rn.okafor"
    assert model.prediction[0].outcome.text == "Sepsis or clinical deterioration"


def _valid(resource: dict[str, object]) -> RiskAssessment:
    """The resource as R4 (R4B's wire format) reads it; R5 must read it too."""
    RiskAssessmentR5.model_validate(resource)
    return RiskAssessment.model_validate(resource)


def _codes(resource: dict[str, object], system: str) -> list[str]:
    risk = _valid(resource).prediction[0].qualitativeRisk
    return [c.code for c in (risk.coding or []) if c.system == system] if risk is not None else []


def _news2(total: int, band: str | None) -> RuleScore:
    return RuleScore(name="NEWS2", total=total, parameters={}, band=band)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("severity", "news2", "risk"),
    [
        ("medium", _news2(2, "low"), "moderate"),  # model-raised: not "low" because NEWS2 is
        ("high", _news2(5, "medium"), "high"),
        ("low-medium", _news2(7, "high"), "high"),  # worse since it opened: the band
        ("medium", None, "moderate"),  # an acknowledgement (no score at hand): the severity
        ("high", _news2(6, None), "high"),
    ],
)
def test_an_active_alerts_risk_is_the_higher_of_its_severity_and_the_news2_band(
    severity: str, news2: RuleScore | None, risk: str
) -> None:
    for state in ("open", "escalated", "acknowledged"):
        resource = alert_to_risk_assessment(make_alert(state=state, severity=severity, news2=news2, risk=None))
        assert _codes(resource, RISK_PROBABILITY_SYSTEM) == [risk]
        # the NEWS2 band coding only where there is a band, and it is the band, not the severity
        band = news2.band if news2 is not None else None
        assert _codes(resource, VIGIL_NEWS2_BAND_SYSTEM) == ([band] if band else [])


def test_the_qualitative_text_names_the_severity_and_the_news2_behind_the_code() -> None:
    resource = alert_to_risk_assessment(make_alert(severity="medium", news2=_news2(2, "low")))
    assert resource["prediction"][0]["qualitativeRisk"]["text"] == "alert severity medium; NEWS2 2 (low)"


def test_a_resolution_says_so_in_code_and_claims_no_alert_level_risk() -> None:
    # resolved by a clinician or a discharge: no score at hand, so no risk (was published "high")
    by_hand = alert_to_risk_assessment(make_alert(state="resolved", severity="high", news2=None, by="rn.okafor"))
    model = _valid(by_hand)
    assert model.status == "final"
    assert [(e.url, e.valueCoding.system, e.valueCoding.code) for e in model.extension] == [
        (VIGIL_ALERT_STATE_SYSTEM, VIGIL_ALERT_STATE_SYSTEM, "resolved")
    ]
    assert model.prediction[0].qualitativeRisk is None
    assert model.performer.display == "rn.okafor"
    # resolved by a score: that score's band, not the alert's severity
    by_score = alert_to_risk_assessment(make_alert(state="resolved", severity="high", news2=_news2(1, "low")))
    assert _codes(by_score, RISK_PROBABILITY_SYSTEM) == ["low"]
    assert _codes(by_score, VIGIL_NEWS2_BAND_SYSTEM) == ["low"]


@pytest.mark.parametrize("state", ["open", "escalated", "acknowledged", "resolved"])
def test_every_transition_carries_its_alert_state_coded(state: str) -> None:
    model = _valid(alert_to_risk_assessment(make_alert(state=state)))
    assert model.extension[0].url == VIGIL_ALERT_STATE_SYSTEM and model.extension[0].valueCoding.code == state


@pytest.mark.parametrize("patient_id", ["MRN:0042/7", "00042_7", "p" * 65, "Ünal-1"])
def test_a_patient_id_outside_the_fhir_id_grammar_is_a_logical_reference(patient_id: str) -> None:
    resource = alert_to_risk_assessment(make_alert(patient_id=patient_id, encounter="V 7/2"))
    model = _valid(resource)
    assert model.subject.reference is None
    assert (model.subject.type, model.subject.identifier.value) == ("Patient", patient_id)
    assert model.encounter.reference is None
    assert (model.encounter.type, model.encounter.identifier.value) == ("Encounter", "V 7/2")


def test_a_fhir_id_is_a_literal_reference() -> None:
    resource = alert_to_risk_assessment(make_alert(patient_id="A-42.7", encounter="V77120044"))
    assert resource["subject"] == {"reference": "Patient/A-42.7"}
    assert resource["encounter"] == {"reference": "Encounter/V77120044"}


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


# --- every dead-letter reason has its issue type ------------------------------------------------

# What the codecs and the stay rules can dead-letter, read from their source: each ``Rejected(...)``
# and ``ctx.reject(...)`` whose reason is a literal or a module constant. The codecs build their
# ignores as ``Rejected`` too; those are counted, never an issue of an OperationOutcome.
_REASON_SOURCES = ("models/stays.py", "schemas/normalize.py", "schemas/codecs/*.py")
_IGNORED_ONLY = frozenset(
    {"adt_transfer", "adt_not_discharge", "unmonitored_unit", "superseded_version", "deleted", "empty_bundle"}
)


def _reasons_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    reasons = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        called = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        first = node.args[0]
        if called in ("Rejected", "reject"):
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                reasons.add(first.value)
            elif isinstance(first, ast.Name) and first.id in constants:
                reasons.add(constants[first.id])
    return reasons


def test_every_reason_the_codecs_and_the_stay_rules_dead_letter_has_its_issue_type() -> None:
    """A reason missing from the table answers ``processing`` (an error of Vigil's own) where the
    sender should read what rule refused its input (``late_discharge``, ``adt_merge`` were)."""
    package = Path(fhir_out.__file__).parents[2]  # vigil's root: schemas/codecs/fhir_out.py
    paths = [p for pattern in _REASON_SOURCES for p in sorted(package.glob(pattern))]
    reasons = set().union(*(_reasons_in(path) for path in paths))
    assert {"late_discharge", "adt_merge", "no_open_stay", "retracted", "missing_time"} <= reasons  # the walk reads
    missing = sorted(reason for reason in reasons - _IGNORED_ONLY if reason not in fhir_out._ISSUE_CODES)
    assert missing == []
    # R4 issue-type codes (http://hl7.org/fhir/valueset-issue-type.html) the table uses
    assert set(fhir_out._ISSUE_CODES.values()) <= {
        "structure",
        "required",
        "value",
        "code-invalid",
        "not-supported",
        "duplicate",
        "business-rule",
        "too-costly",
        "exception",
    }
