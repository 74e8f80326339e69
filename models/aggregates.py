"""Running per-variable aggregates of a stay since admission: the part of a patient's history
that must survive when hours leave the 48-hour window.

A patient's hourly rows are scanned in order; after each hour the aggregate of every variable is

- ``n``: hours measured since admission,
- ``last_v``/``last_h``, ``prev_v``/``prev_h``: the latest and the one-before-latest measurement
  (value, hour), however long ago,
- ``max``/``min``: running extremes since admission,
- ``base_sum``/``base_n``: the measurements of the first ``BASELINE_HOURS`` hours (the patient's own
  baseline; after that hour it never changes).

``scan(init, rows, hour0)`` continues from any earlier aggregate, so the aggregate of hour t is the
same whether the scan starts at admission (offline: the whole stay) or at the last hour folded into
the carry (stream: ``init`` = the aggregate of the hours that left the window, ``rows`` = the
window). Every field is either an integer count, a copy of a measured float32 value, an exact
max/min, or a float64 running sum accumulated in the same order both ways: the two paths agree
bit for bit (``tests/unit/models/test_stepping.py``).

Bytes: only variables measured at least once are written (``to_bytes``), ~30 bytes each.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields
from typing import Final

import numpy as np

from vigil.schemas.codes import DYNAMIC_CODES

N_VARS: Final[int] = len(DYNAMIC_CODES)
# Baseline: the patient's own values in the first 12 ICU hours (for change-from-baseline features).
BASELINE_HOURS: Final[int] = 12
NO_HOUR: Final[int] = -1_000_000  # "never measured" (hours are >= 0)


@dataclass
class Aggregates:
    """One aggregate per variable ([N_VARS] arrays, DYNAMIC_CODES order)."""

    n: np.ndarray  # int32
    last_v: np.ndarray  # float32, NaN when never measured
    last_h: np.ndarray  # int32, NO_HOUR when never measured
    prev_v: np.ndarray
    prev_h: np.ndarray
    max: np.ndarray  # float32, NaN when never measured
    min: np.ndarray
    base_sum: np.ndarray  # float64
    base_n: np.ndarray  # int32

    @classmethod
    def empty(cls, n_vars: int = N_VARS) -> Aggregates:
        nan = np.full(n_vars, np.nan, np.float32)
        never = np.full(n_vars, NO_HOUR, np.int32)
        zero = np.zeros(n_vars, np.int32)
        return cls(zero, nan, never, nan.copy(), never.copy(), nan.copy(), nan.copy(), np.zeros(n_vars), zero.copy())

    def equals(self, other: Aggregates) -> bool:
        return all(np.array_equal(getattr(self, f.name), getattr(other, f.name), equal_nan=True) for f in fields(self))

    # ------------------------------------------------------------------ bytes
    # version u8, n_measured u8, then per measured variable:
    #   var u8, n u16, last_h i32, prev_h i32, base_n u8, last f32, prev f32, max f32, min f32, base_sum f64
    _VERSION = 1
    _ITEM = "<BHiiBffffd"

    def to_bytes(self) -> bytes:
        seen = np.nonzero(self.n > 0)[0]
        parts = [struct.pack("<BB", self._VERSION, len(seen))]
        for v in seen.tolist():
            parts.append(
                struct.pack(
                    self._ITEM,
                    v,
                    min(int(self.n[v]), 65535),
                    int(self.last_h[v]),
                    int(self.prev_h[v]),
                    int(self.base_n[v]),
                    float(self.last_v[v]),
                    float(self.prev_v[v]),
                    float(self.max[v]),
                    float(self.min[v]),
                    float(self.base_sum[v]),
                )
            )
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Aggregates:
        version, count = struct.unpack_from("<BB", blob)
        if version != cls._VERSION:
            raise ValueError(f"unknown aggregates blob version {version}")
        agg = cls.empty()
        size = struct.calcsize(cls._ITEM)
        for k in range(count):
            v, n, lh, ph, bn, lv, pv, mx, mn, bs = struct.unpack_from(cls._ITEM, blob, 2 + k * size)
            agg.n[v], agg.last_h[v], agg.prev_h[v], agg.base_n[v] = n, lh, ph, bn
            agg.last_v[v], agg.prev_v[v], agg.max[v], agg.min[v], agg.base_sum[v] = lv, pv, mx, mn, bs
        return agg

    def byte_size(self) -> int:
        return 2 + int((self.n > 0).sum()) * struct.calcsize(self._ITEM)


@dataclass
class AggregateSeries:
    """The aggregate after each scanned hour: every field as a [T, N_VARS] array."""

    n: np.ndarray
    last_v: np.ndarray
    last_h: np.ndarray
    prev_v: np.ndarray
    prev_h: np.ndarray
    max: np.ndarray
    min: np.ndarray
    base_sum: np.ndarray
    base_n: np.ndarray
    hours: np.ndarray  # [T] the hour of each row

    def at(self, i: int) -> Aggregates:
        """The aggregate after row ``i`` (an index into the scanned rows)."""
        return Aggregates(*(getattr(self, f.name)[i].copy() for f in fields(Aggregates)))

    def baseline(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.base_n > 0, self.base_sum / np.maximum(self.base_n, 1), np.nan).astype(np.float32)


def scan(init: Aggregates, rows: np.ndarray, hour0: int) -> AggregateSeries:
    """Aggregates after each of ``rows`` ([T, N_VARS] float32, NaN = not measured), the first row
    being hour ``hour0`` and ``init`` the aggregate of every hour before it."""
    rows = np.asarray(rows, dtype=np.float32)
    t_len, n_vars = rows.shape
    hours = hour0 + np.arange(t_len, dtype=np.int32)
    measured = ~np.isnan(rows)
    n = (init.n[None] + np.cumsum(measured, axis=0, dtype=np.int32)).astype(np.int32)
    pos = np.where(measured, np.arange(t_len, dtype=np.int32)[:, None], -1)
    last_i = np.maximum.accumulate(pos, axis=0) if t_len else pos
    before = np.vstack([np.full((1, n_vars), -1, np.int32), last_i[:-1]])  # newest index strictly before row t
    cols = np.arange(n_vars)[None, :]
    prev_i = np.where(last_i >= 0, before[np.clip(last_i, 0, None), cols], -1)
    has_last, has_prev = last_i >= 0, prev_i >= 0
    last_v = np.where(has_last, rows[np.clip(last_i, 0, None), cols], init.last_v[None])
    last_h = np.where(has_last, hours[np.clip(last_i, 0, None)], init.last_h[None])
    # the measurement before the newest: in the rows, else the carried newest (when the newest is
    # the first in the rows), else the carried one-before-newest (nothing measured in the rows)
    prev_v = np.where(has_prev, rows[np.clip(prev_i, 0, None), cols], np.where(has_last, init.last_v, init.prev_v))
    prev_h = np.where(has_prev, hours[np.clip(prev_i, 0, None)], np.where(has_last, init.last_h, init.prev_h))
    run_max = np.fmax.accumulate(np.vstack([init.max[None], rows]), axis=0)[1:]
    run_min = np.fmin.accumulate(np.vstack([init.min[None], rows]), axis=0)[1:]
    in_base = measured & (hours < BASELINE_HOURS)[:, None]
    base_vals = np.where(in_base, rows, 0.0).astype(np.float64)
    base_sum = np.cumsum(np.vstack([init.base_sum[None], base_vals]), axis=0)[1:]
    base_n = (init.base_n[None] + np.cumsum(in_base, axis=0, dtype=np.int32)).astype(np.int32)
    return AggregateSeries(
        n=n,
        last_v=last_v.astype(np.float32),
        last_h=last_h.astype(np.int32),
        prev_v=prev_v.astype(np.float32),
        prev_h=prev_h.astype(np.int32),
        max=run_max.astype(np.float32),
        min=run_min.astype(np.float32),
        base_sum=base_sum,
        base_n=base_n,
        hours=hours,
    )


def fold(init: Aggregates, rows: np.ndarray, hour0: int) -> Aggregates:
    """The aggregate after ``rows`` (hours that leave the window), continuing from ``init``."""
    if len(rows) == 0:
        return init
    return scan(init, rows, hour0).at(len(rows) - 1)
