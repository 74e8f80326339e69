from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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


def write_psv(path: Path, rows: np.ndarray) -> None:
    lines = ["|".join(HEADER)]
    for r in rows:
        lines.append("|".join("NaN" if np.isnan(v) else f"{v:g}" for v in r))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture()
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture()
def stay_matrix(rng: np.random.Generator) -> np.ndarray:
    rows = synthetic_stay(rng, 80)
    return rows[:, : len(DYNAMIC_CODES)].astype(np.float32)


@pytest.fixture()
def psv_dir(tmp_path: Path, rng: np.random.Generator) -> Path:
    d = tmp_path / "psv"
    d.mkdir()
    write_psv(d / "p000001.psv", synthetic_stay(rng, 30))
    write_psv(d / "p000002.psv", synthetic_stay(rng, 60, septic_from=40))
    write_psv(d / "p000003.psv", synthetic_stay(rng, 5))
    return d
