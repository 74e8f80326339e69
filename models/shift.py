"""Shifted copies of a cohort, to test how models travel to a hospital unlike set A (issue 12).

- ``thin(matrix, "labs", keep, rng)``: a hospital that draws fewer labs. Each hour's lab and
  blood-gas panel (every non-vital value of that hour together, as one draw) is kept with
  probability ``keep`` and otherwise removed; vital signs are untouched.
- ``thin(matrix, "vitals", keep, rng)``: a hospital that charts vital signs less often (every
  second hour instead of hourly, at ``keep=0.5``). Each hour's charting (every vital sign of that
  hour together) is kept with probability ``keep``; labs are untouched. Set A charts vitals almost
  hourly, so a model may have learnt how often a nurse charts (``*_rate``, ``*_hours_since``) as
  a sign of illness: this is the shift that would show it.
- ``schedule(matrix, "labs", every_h)``: a hospital that draws labs by routine, not by worry: at
  most one panel per ``every_h`` hours (``every_h=24``: once a day). A draw is kept when no kept
  draw is younger than ``every_h`` hours, so the first of the stay is always kept; deterministic.
  Random thinning keeps set A's habit of drawing more often for the sicker patient (septic stays
  have 9.9 lab hours a day against 6.0, medians), a schedule erases it: the two test different
  things, and a model taught on one kind of thinning is judged fairly only on the other.
- Leave-one-unit-out (set A's Unit1 = medical ICU, Unit2 = surgical ICU) lives in training
  (``models.train.shifts``): it needs the unit of each stay, which serving never reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import numpy as np

from vigil.schemas.codes import DYNAMIC_CODES, VITALS

# the columns of DYNAMIC_CODES one draw of each kind removes together
KINDS: Final[dict[str, np.ndarray]] = {
    "labs": np.array([i for i, c in enumerate(DYNAMIC_CODES) if c not in VITALS]),
    "vitals": np.array([i for i, c in enumerate(DYNAMIC_CODES) if c in VITALS]),
}
_WHAT = {"labs": "lab draws", "vitals": "vital-sign chartings"}
MAX_EVERY_H: Final = 24 * 14  # a schedule longer than two weeks keeps one draw per stay


def _kind(kind: str) -> np.ndarray:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    return KINDS[kind]


def thin(matrix: np.ndarray, kind: str, keep: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``matrix`` ([T, len(DYNAMIC_CODES)]) keeping each hour's draw of ``kind`` with probability ``keep``."""
    cols = _kind(kind)
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must be within [0, 1], got {keep}")
    out = np.array(matrix, dtype=np.float32, copy=True)
    drop = rng.random(len(out)) >= keep
    out[np.ix_(drop, cols)] = np.nan
    return out


def thin_labs(matrix: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
    """``thin(matrix, "labs", keep, rng)``."""
    return thin(matrix, "labs", keep, rng)


def schedule(matrix: np.ndarray, kind: str, every_h: int) -> np.ndarray:
    """A copy of ``matrix`` keeping a draw of ``kind`` only when the last kept one is ``every_h`` hours
    old or more (at most one draw per ``every_h`` hours; the first of the stay is kept)."""
    cols = _kind(kind)
    if not 1 <= every_h <= MAX_EVERY_H:
        raise ValueError(f"every_h must be within [1, {MAX_EVERY_H}], got {every_h}")
    out = np.array(matrix, dtype=np.float32, copy=True)
    drawn = np.nonzero(~np.isnan(out[:, cols]).all(1))[0]
    drop = np.zeros(len(out), bool)
    last = -every_h
    for t in drawn.tolist():
        if t - last >= every_h:
            last = t
        else:
            drop[t] = True
    out[np.ix_(drop, cols)] = np.nan
    return out


@dataclass(frozen=True)
class Shift:
    """One shift of ``vigil evaluate --shift``: ``keep`` (random thinning) or ``every_h`` (a schedule)."""

    kind: str
    keep: float | None = None
    every_h: int | None = None

    def apply(self, matrix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.every_h is not None:
            return schedule(matrix, self.kind, self.every_h)
        assert self.keep is not None
        return thin(matrix, self.kind, self.keep, rng)

    def __str__(self) -> str:
        return f"{self.kind}=every{self.every_h}h" if self.every_h is not None else f"{self.kind}={self.keep}"

    def summary(self) -> dict[str, object]:
        """What ``vigil evaluate --json`` reports under ``shift`` (with the seed beside it)."""
        if self.every_h is not None:
            return {"name": self.kind, "every_h": self.every_h}
        return {"name": self.kind, "keep": self.keep}


def parse_shift(spec: str) -> Shift:
    """``labs=0.1`` (each hour's lab draw kept with p = 0.1), ``vitals=0.5``, ``labs=every24h`` (at most
    one lab draw a day); raises ValueError on anything else."""
    name, _, value = spec.partition("=")
    if name not in KINDS or not value:
        raise ValueError(
            f"unknown shift {spec!r}: expected labs=<share of lab draws kept, 0..1>, "
            "vitals=<share of vital-sign chartings kept, 0..1> or labs|vitals=every<N>h (at most one per N hours)"
        )
    every = re.fullmatch(r"every(\d{1,4})h", value)
    if every:
        hours = int(every[1])
        if not 1 <= hours <= MAX_EVERY_H:
            raise ValueError(f"{spec}: the schedule must be between every1h and every{MAX_EVERY_H}h")
        return Shift(name, every_h=hours)
    try:
        keep = float(value)
    except ValueError:
        raise ValueError(f"{spec}: {value!r} is neither a number nor every<N>h") from None
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"{name}={value}: the share of {_WHAT[name]} kept must be in (0, 1]")
    return Shift(name, keep=keep)
