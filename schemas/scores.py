"""Risk scores published on ``vigil.scores``: one per patient per scored update."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# 2: ``status`` (provisional | final) added; every version-1 field is unchanged
SCORE_SCHEMA_VERSION = 2

News2Band = Literal["low", "low-medium", "medium", "high"]
# provisional: the hour is still open (more of its events may come); final: the hour has closed and
# this is its score from every event received before it closed (issue 13)
ScoreStatus = Literal["provisional", "final"]


class RuleScore(BaseModel):
    """A rule-based score (NEWS2, qSOFA, SIRS) with its per-parameter breakdown.

    ``missing`` lists parameters the data lack (scored 0 but *not* assumed normal: the consumer
    sees that the total is a lower bound); ``inferred`` lists parameters derived indirectly
    (e.g. supplemental oxygen inferred from FiO2 > 0.21).
    """

    model_config = ConfigDict(frozen=True)

    name: Literal["NEWS2", "qSOFA", "SIRS"]
    total: int
    parameters: dict[str, int]
    missing: list[str] = Field(default_factory=list)
    inferred: list[str] = Field(default_factory=list)
    band: News2Band | None = None
    single_parameter_3: bool = False
    positive: bool | None = None


class FeatureContribution(BaseModel):
    model_config = ConfigDict(frozen=True)

    feature: str
    value: float | None
    contribution: float  # signed: > 0 pushes risk up


class ModelScore(BaseModel):
    model_config = ConfigDict(frozen=True)

    model: Literal["sepsis_diagnosis", "deterioration", "combined"]
    version: str
    probability: float = Field(ge=0.0, le=1.0)
    threshold: float | None = None
    positive: bool | None = None
    top_features: list[FeatureContribution] = Field(default_factory=list)


class RiskScore(BaseModel):
    """Everything Vigil knows about a patient's risk at one hour."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCORE_SCHEMA_VERSION
    score_id: str
    patient_id: str
    encounter: str | None = None
    ward: str | None = None
    # hours since the stay's first measurement (a vital sign or a lab: its hour 0, the models'
    # icu_hours); before it (a rules-only score) hours since the first event, provisional
    hour: int
    status: ScoreStatus = "provisional"
    scored_at: datetime
    observed_at: datetime  # time of the newest event included
    event_ids: list[str]  # the events this score includes that were new since the last score
    source_ts_ms: int | None = None  # earliest Kafka timestamp of those events (latency)
    news2: RuleScore
    qsofa: RuleScore
    sirs: RuleScore
    models: list[ModelScore] = Field(default_factory=list)
    vitals: dict[str, float | None] = Field(default_factory=dict)  # latest canonical values shown
