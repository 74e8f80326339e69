"""Synthetic ICU stays in the challenge layout (shared by conftest and tests that need plain functions)."""

from __future__ import annotations

from typing import Any

import numpy as np

from vigil.schemas.codes import DYNAMIC_CODES

HEADER = list(DYNAMIC_CODES) + ["Age", "Gender", "Unit1", "Unit2", "HospAdmTime", "ICULOS", "SepsisLabel"]


def synthetic_stay(rng: np.random.Generator, hours: int, septic_from: int | None = None) -> np.ndarray:
    """[hours, 41] rows in the challenge layout: vitals most hours, labs now and then, NaN elsewhere."""
    rows = np.full((hours, len(HEADER)), np.nan)
    base = {"HR": 85, "O2Sat": 97, "Temp": 37.0, "SBP": 120, "MAP": 80, "DBP": 60, "Resp": 18}
    for code, mean in base.items():
        j = HEADER.index(code)
        seen = rng.random(hours) < 0.85
        rows[seen, j] = mean + rng.normal(0, 0.08 * mean, seen.sum())
    for code, mean in {
        "WBC": 9.0,
        "Lactate": 1.5,
        "Creatinine": 1.0,
        "BUN": 18.0,
        "Platelets": 220.0,
    }.items():
        j = HEADER.index(code)
        seen = rng.random(hours) < 0.12
        rows[seen, j] = mean * rng.lognormal(0, 0.3, seen.sum())
    rows[:, HEADER.index("Age")] = 67.0
    rows[:, HEADER.index("Gender")] = 1.0
    rows[:, HEADER.index("HospAdmTime")] = -3.5
    rows[:, HEADER.index("ICULOS")] = np.arange(1, hours + 1)
    label = np.zeros(hours)
    if septic_from is not None:
        label[septic_from:] = 1
    rows[:, HEADER.index("SepsisLabel")] = label
    return rows


def septic_labels(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels of every hour, stay lengths): ``n`` stays of 20-39 h, ~30 % turning septic at a random
    hour (label 1 from then on, as PhysioNet 2019 labels it)."""
    lengths = rng.integers(20, 40, n)
    labels = []
    for t in lengths:
        lab = np.zeros(t, np.int8)
        if rng.random() < 0.3:
            lab[rng.integers(5, t - 3) :] = 1
        labels.append(lab)
    return np.concatenate(labels), lengths


def two_unit_stays(rng: np.random.Generator, n: int, every: int = 2) -> tuple[Any, np.ndarray, np.ndarray]:
    """``septic_labels`` stays split between ICU units 1 (every ``every``-th stay) and 2: (the cohort's
    ``shifts.Utility``, each stay's unit, each row's unit)."""
    from vigil.models.train.shifts import Utility

    labels, lengths = septic_labels(rng, n)
    u = Utility(labels, lengths)
    unit = np.where(np.arange(n) % every == 0, 1, 2)
    return u, unit, u.rows_of(unit)
