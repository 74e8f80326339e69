"""Offline rule scores (training baselines, `vigil evaluate`) use the same "current observation
set" as the stream: the newest value of each variable within RULE_MAX_AGE_H hours."""

from datetime import UTC, datetime, timedelta

import numpy as np

from vigil.models.early_warning import news2, observations_from_row, qsofa, sirs
from vigil.models.offline import rule_scores
from vigil.models.window import PatientWindow
from vigil.schemas.codes import DYNAMIC_CODES, LABS
from vigil.schemas.events import PatientEvent


def test_offline_rule_scores_equal_stream_rule_scores() -> None:
    rng = np.random.default_rng(3)
    hours = 40
    matrix = np.full((hours, len(DYNAMIC_CODES)), np.nan, dtype=np.float32)
    ranges = {
        "HR": (40, 150),
        "O2Sat": (85, 100),
        "Temp": (34.5, 40),
        "SBP": (80, 200),
        "Resp": (6, 35),
        "FiO2": (0.21, 0.6),
        "WBC": (2, 20),
        "PaCO2": (25, 50),
        "MAP": (50, 110),
    }
    for code, (lo, hi) in ranges.items():
        idx = DYNAMIC_CODES.index(code)
        measured = rng.random(hours) < (0.7 if code in ("HR", "O2Sat", "SBP", "Resp", "MAP") else 0.15)
        matrix[measured, idx] = rng.uniform(lo, hi, measured.sum()).round(1)
    offline = rule_scores(matrix)
    window = PatientWindow()
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    window.apply(PatientEvent(patient_id="p", observed_at=t0, kind="demographic", code="Age", value=60, unit="a"))
    for t in range(hours):
        for idx in np.flatnonzero(~np.isnan(matrix[t])):
            code = DYNAMIC_CODES[idx]
            window.apply(
                PatientEvent(
                    patient_id="p",
                    observed_at=t0 + timedelta(hours=t, minutes=30),
                    kind="lab" if code in LABS else "vital",
                    code=code,
                    value=float(matrix[t, idx]),
                )
            )
        if window.last_hour < t:  # an hour without measurements: the stream has nothing to score
            continue
        obs = observations_from_row(window.current_values())
        assert offline["NEWS2"][t] == news2(obs).total, t
        assert offline["NEWS2_single3"][t] == news2(obs).single_parameter_3, t
        assert offline["qSOFA"][t] == qsofa(obs).total, t
        assert offline["SIRS"][t] == sirs(obs).total, t
