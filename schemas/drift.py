"""Ward input drift published on ``vigil.drift`` (keyed by ward): how far a ward's live model inputs
have moved from the training reference (``models.drift``; PSI over a sliding window of closed
patient-hours, per worker). No patient data: counts and distances only."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DRIFT_SCHEMA_VERSION = 1


class DriftInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    input: str  # a variable (kind "measured": how often it is measured) or a model feature ("value")
    kind: Literal["measured", "value"]
    psi: float = Field(allow_inf_nan=False)


class WardDrift(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = DRIFT_SCHEMA_VERSION
    ward: str
    at: datetime
    patient_hours: int  # closed patient-hours in the window the PSI was computed on
    patients: int  # distinct patients among them
    max_psi: float = Field(allow_inf_nan=False)  # NaN broke /api/state and the browser's JSON.parse
    # max_psi above it: the ward's inputs left what the models were trained on (the 99th percentile
    # of training wards of as many patients, never below 0.25)
    threshold: float
    drifted: bool
    top: list[DriftInput]  # the inputs that moved most
    reference: str  # the training cohort the inputs are compared with
    model_version: str
    # the worker that judged this share of the ward (host:pid; each worker sees its own partitions'
    # patients): a reader keeps each worker's newest record, not the ward's (None: an older worker)
    worker: str | None = None
