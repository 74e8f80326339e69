"""From a patient's stream state to the inputs of treatment scoring (pure).

Time zero is when Vigil first found the patient at risk (the moment the SSC 2021 clock starts
for suspected sepsis, or the NEWS2 trigger); care is judged as of the newest observation.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from vigil.models.window import PatientWindow
from vigil.schemas.codes import TREATMENTS
from vigil.schemas.scores import RiskScore

# A bedside observation set: at least three of the NEWS2 vital signs recorded in the hour.
OBSERVATION_CODES = ("Resp", "O2Sat", "SBP", "HR", "Temp")
OBSERVATION_MIN_PARAMS = 3


class CareClock(BaseModel):
    """What the treatment agent keeps per patient (Redis ``vigil:t:<hash>``, JSON): when the care
    clock started, and digests of the inputs and of the last published care score (so an unchanged
    score is neither recomputed nor re-published)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    time_zero: datetime
    digest: str = ""
    inputs: str = ""


def at_risk(score: RiskScore) -> bool:
    """Patients for whom a care score is published: NEWS2 medium/high or a single 3
    (RCP 2017 clinical response), qSOFA >= 2 (Sepsis-3), or a positive model."""
    n = score.news2
    model_positive = any(m.positive for m in score.models if m.model == "combined")
    return n.band in ("medium", "high") or n.single_parameter_3 or bool(score.qsofa.positive) or model_positive


def suspected_sepsis(score: RiskScore) -> bool:
    model_positive = any(m.positive for m in score.models if m.model == "combined")
    return bool(score.qsofa.positive) or bool(score.sirs.positive) or model_positive


def care_categories(state: dict[str, Any]) -> dict[str, Any]:
    """What the treatment rules actually compare (thresholds of SSC 2021 and RCP NEWS2 2017):
    a new blood pressure that keeps the patient on the same side of MAP 65 / SBP 90, or a NEWS2
    total in the same response band, cannot change the care score."""
    news2 = state["news2_total"]
    band = (
        "zero"
        if news2 == 0
        else "single3"
        if state["news2_single_parameter_3"] and news2 < 5
        else "low"
        if news2 < 5
        else "medium"
        if news2 < 7
        else "high"
    )
    map_mmhg, sbp = state["map_mmhg"], state["sbp_mmhg"]
    return {
        "hypotensive": (map_mmhg is not None and map_mmhg < 65) or (sbp is not None and sbp < 90),
        "lactate": state["lactate_mmol_l"],
        "weight": state["weight_kg"],
        "news2": band,
        "suspected_sepsis": state["suspected_sepsis"],
        "time_zero": state["time_zero"],
    }


def care_inputs(
    score: RiskScore, window: PatientWindow, time_zero: datetime
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(PatientState fields, treatment items) for ``models.treatment.score_patient_care``."""
    from vigil.schemas.codes import DYNAMIC_CODES

    lactate_idx = DYNAMIC_CODES.index("Lactate")
    first_lactate = next((row[lactate_idx][0] for hour, row in sorted(window.rows.items()) if lactate_idx in row), None)
    weights = [v for code, _, v in window.treatments if code == "weight_kg"]
    items: list[dict[str, Any]] = []
    for code, ts, value in window.treatments:
        if code == "weight_kg":
            continue
        item: dict[str, Any] = {"action": code, "at": datetime.fromtimestamp(ts, tz=UTC)}
        unit = TREATMENTS[code][0]
        if code in ("crystalloid_ml", "vasopressor", "oxygen"):
            item["dose"] = {"value": value, "unit": unit}
        items.append(item)
    # lactate results in the window count as lactate measured (the lab was drawn)
    for hour, row in sorted(window.rows.items()):
        if lactate_idx in row:
            items.append({"action": "lactate_ordered", "at": window.hour_start(hour)})
        recorded = sum(1 for code in OBSERVATION_CODES if DYNAMIC_CODES.index(code) in row)
        if recorded >= OBSERVATION_MIN_PARAMS:
            items.append({"action": "observation_set", "at": window.hour_start(hour)})
    vitals = score.vitals
    state = {
        "weight_kg": weights[-1] if weights else None,
        "lactate_mmol_l": first_lactate,
        "map_mmhg": vitals.get("MAP"),
        "sbp_mmhg": vitals.get("SBP"),
        "suspected_sepsis": suspected_sepsis(score),
        "news2_total": min(score.news2.total, 20),
        "news2_band": score.news2.band,
        "news2_single_parameter_3": score.news2.single_parameter_3,
        "time_zero": time_zero,
    }
    return state, items
