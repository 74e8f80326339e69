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
- ``omit_panels(matrix, keep, rng)``: a hospital whose habits of ordering differ. The panels an
  ICU may or may not order for a patient (blood gas, lactate, liver tests, coagulation, troponin;
  ``PANELS``, grouped by how often set A draws them together) are each ordered for a stay with
  probability ``keep``, for the whole stay, independently; chemistry and blood count, drawn for
  nearly every stay in every ICU, are kept as are vital signs. Unlike the two thinnings above it
  keeps each ordered panel's frequency and removes whole panels: a model that learnt "lactate was
  ordered" as a sign of suspicion meets a hospital that orders it for half its patients, whoever
  they are. Neither training copy (labs thinned at random, labs once a day) teaches it.
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
# the panels a hospital orders for some stays and not others (set A: each drawn for 2-78 % of the
# stays; chemistry and blood count, for 81-98 %, are not among them); FiO2, a ventilator
# setting the respiratory therapist charts, is not a draw and stays
PANELS: Final[dict[str, tuple[str, ...]]] = {
    "blood_gas": ("BaseExcess", "pH", "PaCO2", "SaO2"),
    "lactate": ("Lactate",),
    "liver": ("AST", "Alkalinephos", "Bilirubin_total", "Bilirubin_direct"),
    "coagulation": ("PTT", "Fibrinogen"),
    "troponin": ("TroponinI",),
}
_PANEL_COLS: Final = tuple(np.array([DYNAMIC_CODES.index(c) for c in codes]) for codes in PANELS.values())
SHIFT_NAMES: Final = (*KINDS, "panels")
_WHAT = {"labs": "lab draws", "vitals": "vital-sign chartings", "panels": "optional lab panels ordered per stay"}
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


def omit_panels(matrix: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of one stay's ``matrix`` in which each of ``PANELS`` is ordered (kept, every hour of it)
    with probability ``keep`` and otherwise never appears; one uniform per panel, in ``PANELS`` order."""
    if not 0.0 <= keep <= 1.0:
        raise ValueError(f"keep must be within [0, 1], got {keep}")
    out = np.array(matrix, dtype=np.float32, copy=True)
    for cols, u in zip(_PANEL_COLS, rng.random(len(_PANEL_COLS)), strict=True):
        if u >= keep:
            out[:, cols] = np.nan
    return out


@dataclass(frozen=True)
class Shift:
    """One shift of ``vigil evaluate --shift``: ``keep`` (random thinning; for ``panels`` the share
    of stays each optional panel is ordered for) or ``every_h`` (a schedule). ``apply`` takes one stay."""

    kind: str
    keep: float | None = None
    every_h: int | None = None

    def apply(self, matrix: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.every_h is not None:
            return schedule(matrix, self.kind, self.every_h)
        assert self.keep is not None
        if self.kind == "panels":
            return omit_panels(matrix, self.keep, rng)
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
    one lab draw a day), ``panels=0.5`` (each optional panel ordered for half the stays); raises
    ValueError on anything else."""
    name, _, value = spec.partition("=")
    if name not in SHIFT_NAMES or not value:
        raise ValueError(
            f"unknown shift {spec!r}: expected labs=<share of lab draws kept, 0..1>, "
            "vitals=<share of vital-sign chartings kept, 0..1>, labs|vitals=every<N>h (at most one per N hours) "
            "or panels=<share of stays each optional lab panel is ordered for, 0..1>"
        )
    every = re.fullmatch(r"every(\d{1,4})h", value)
    if every and name == "panels":
        raise ValueError(f"{spec}: panels takes a share of stays (panels=0.5), not a schedule")
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
