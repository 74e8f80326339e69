"""Shifted copies of a cohort, to test how models travel to a hospital unlike set A (issue 12).

- ``thin(matrix, "labs", keep, rng)``: a hospital that draws fewer labs. Each hour's lab and
  blood-gas panel (every non-vital value of that hour together, as one draw) is kept with
  probability ``keep`` and otherwise removed; vital signs are untouched.
- ``thin(matrix, "vitals", keep, rng)``: a hospital that charts vital signs less often (every
  second hour instead of hourly, at ``keep=0.5``). Each hour's charting (every vital sign of that
  hour together) is kept with probability ``keep``; labs are untouched. Set A charts vitals almost
  hourly, so a model may have learnt how often a nurse charts (``*_rate``, ``*_hours_since``) as
  a sign of illness: this is the shift that would show it.
- Leave-one-unit-out (set A's Unit1 = medical ICU, Unit2 = surgical ICU) lives in training
  (``models.train.shifts``): it needs the unit of each stay, which serving never reads.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from vigil.schemas.codes import DYNAMIC_CODES, VITALS

# the columns of DYNAMIC_CODES one draw of each kind removes together
KINDS: Final[dict[str, np.ndarray]] = {
    "labs": np.array([i for i, c in enumerate(DYNAMIC_CODES) if c not in VITALS]),
    "vitals": np.array([i for i, c in enumerate(DYNAMIC_CODES) if c in VITALS]),
}
_WHAT = {"labs": "lab draws", "vitals": "vital-sign chartings"}


def thin(matrix: np.ndarray, kind: str, keep: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``matrix`` ([T, len(DYNAMIC_CODES)]) keeping each hour's draw of ``kind`` with probability ``keep``."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must be within [0, 1], got {keep}")
    out = np.array(matrix, dtype=np.float32, copy=True)
    drop = rng.random(len(out)) >= keep
    out[np.ix_(drop, KINDS[kind])] = np.nan
    return out


def thin_labs(matrix: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
    """``thin(matrix, "labs", keep, rng)``."""
    return thin(matrix, "labs", keep, rng)


def parse_shift(spec: str) -> tuple[str, float]:
    """``labs=0.1`` -> ("labs", 0.1), ``vitals=0.5`` -> ("vitals", 0.5); raises ValueError on anything else."""
    name, _, value = spec.partition("=")
    if name not in KINDS or not value:
        raise ValueError(
            f"unknown shift {spec!r}: expected labs=<share of lab draws kept, 0..1> "
            "or vitals=<share of vital-sign chartings kept, 0..1>"
        )
    try:
        keep = float(value)
    except ValueError:
        raise ValueError(f"{spec}: {value!r} is not a number") from None
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"{name}={value}: the share of {_WHAT[name]} kept must be in (0, 1]")
    return name, keep
