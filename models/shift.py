"""Shifted copies of a cohort, to test how models travel to a hospital unlike set A (issue 12).

- ``thin_labs(matrix, keep, rng)``: a hospital that draws fewer labs. Each hour's lab and
  blood-gas panel (every non-vital value of that hour together, as one draw) is kept with
  probability ``keep`` and otherwise removed; vital signs are untouched.
- Leave-one-unit-out (set A's Unit1 = medical ICU, Unit2 = surgical ICU) lives in training
  (``models.train.shifts``): it needs the unit of each stay, which serving never reads.
"""

from __future__ import annotations

import numpy as np

from vigil.schemas.codes import DYNAMIC_CODES, VITALS

_LAB_COLUMNS = np.array([i for i, c in enumerate(DYNAMIC_CODES) if c not in VITALS])


def thin_labs(matrix: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``matrix`` ([T, len(DYNAMIC_CODES)]) keeping each hour's lab draw with probability ``keep``."""
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must be within [0, 1], got {keep}")
    out = np.array(matrix, dtype=np.float32, copy=True)
    drop = rng.random(len(out)) >= keep
    out[np.ix_(drop, _LAB_COLUMNS)] = np.nan
    return out


def parse_shift(spec: str) -> tuple[str, float]:
    """``labs=0.1`` -> ("labs", 0.1); raises ValueError on anything else."""
    name, _, value = spec.partition("=")
    if name != "labs" or not value:
        raise ValueError(f"unknown shift {spec!r}: expected labs=<share of lab draws kept, 0..1>")
    keep = float(value)
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"labs={value}: the share kept must be in (0, 1]")
    return name, keep
