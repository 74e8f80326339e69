from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synthetic import HEADER, synthetic_stay  # noqa: E402  (pytest puts this folder on sys.path)

from vigil.schemas.codes import DYNAMIC_CODES


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
