"""Record builders and sign-in helpers for the dashboard unit tests."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from vigil.schemas.alerts import Alert, AlertExplanation, TrendPoint
from vigil.schemas.scores import FeatureContribution, ModelScore, RiskScore, RuleScore

PASSWORD = "correct horse battery"
API_TOKEN = "intake-token-123"


def news2(total: int, band: str = "low", single3: bool = False) -> RuleScore:
    return RuleScore(
        name="NEWS2",
        total=total,
        parameters={"respiration_rate": 3 if single3 else 2, "heart_rate": 1},
        band=band,
        single_parameter_3=single3,
        missing=["consciousness"],
    )


def risk_score(
    pid: str, hour: int, total: int, band: str, hr: float = 90.0, prob: float = 0.2, ward: str = "ICU-1"
) -> RiskScore:
    at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=hour)
    rule = RuleScore(name="qSOFA", total=0, parameters={})
    return RiskScore(
        score_id=f"s-{pid}-{hour}",
        patient_id=pid,
        ward=ward,
        hour=hour,
        scored_at=at,
        observed_at=at,
        event_ids=[f"e{hour}"],
        news2=news2(total, band),
        qsofa=rule,
        sirs=RuleScore(name="SIRS", total=1, parameters={}),
        models=[
            ModelScore(
                model="combined",
                version="v1",
                probability=prob,
                top_features=[FeatureContribution(feature="HR", value=hr, contribution=0.3)],
            )
        ],
        vitals={"HR": hr, "Resp": 22.0, "SBP": 100.0, "O2Sat": 95.0, "Temp": 38.1},
    )


def alert(
    pid: str,
    state: str = "open",
    severity: str = "medium",
    alert_id: str = "a1",
    transition: str | None = None,
    ward: str = "ICU-1",
    by: str | None = None,
) -> Alert:
    return Alert(
        alert_id=alert_id,
        transition_id=transition or f"{alert_id}-{state}",
        patient_id=pid,
        ward=ward,
        state=state,
        severity=severity,
        trigger="news2_band:medium",
        reason="NEWS2 6 (medium): urgent response",
        at=datetime(2026, 1, 1, 3, tzinfo=UTC),
        hour=3,
        news2=news2(6, "medium"),
        risk=0.41,
        by=by,
        explanation=AlertExplanation(
            rule_breakdown={"respiration_rate": 3, "heart_rate": 2, "temperature": 1},
            top_features=[FeatureContribution(feature="Resp", value=27.0, contribution=0.4)],
            trend=[TrendPoint(hour=1, news2=2, risk=0.1), TrendPoint(hour=3, news2=6, risk=0.41)],
            score_ids=["s1"],
            summary="NEWS2 rose 2 -> 6 in 2 h",
        ),
    )


def sign_in(client: TestClient, username: str, password: str = PASSWORD):
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/login", data={"username": username, "password": password, "csrf": token}, follow_redirects=False
    )


def csrf_of(client: TestClient) -> str:
    return client.get("/api/state").json()["csrf"]
