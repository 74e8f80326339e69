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
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Final

import numpy as np

from vigil.models.branchfree import where
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

    @classmethod
    def stack(cls, aggs: Sequence[Aggregates]) -> Aggregates:
        """Many patients' aggregates as one with [B, N_VARS] fields (``scan``'s batched ``init``)."""
        if len(aggs) == 1:  # a batch of one: views, no copies
            return cls(*(getattr(aggs[0], f.name)[None] for f in fields(cls)))
        return cls(*(np.stack([getattr(a, f.name) for a in aggs]) for f in fields(cls)))

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
            if v >= N_VARS:  # damaged: infra.redis rebuilds the carry from the window
                raise ValueError(f"aggregates blob names variable {v} of {N_VARS}")
            agg.n[v], agg.last_h[v], agg.prev_h[v], agg.base_n[v] = n, lh, ph, bn
            agg.last_v[v], agg.prev_v[v], agg.max[v], agg.min[v], agg.base_sum[v] = lv, pv, mx, mn, bs
        return agg

    def byte_size(self) -> int:
        return 2 + int((self.n > 0).sum()) * struct.calcsize(self._ITEM)


@dataclass
class AggregateSeries:
    """The aggregate after each scanned hour: every field as a [T, N_VARS] array ([B, T, N_VARS] for a
    batch of patients, ``hours`` [B, T])."""

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

    def as_batch(self) -> AggregateSeries:
        """The series of one stay as a batch of one (views, no copy)."""
        return AggregateSeries(*(getattr(self, f.name)[None] for f in fields(self)))

    def at(self, i: int, patient: int | None = None) -> Aggregates:
        """The aggregate after row ``i`` (an index into the scanned rows; of ``patient`` in a batch)."""
        index = (i,) if patient is None else (patient, i)
        return Aggregates(*(getattr(self, f.name)[index].copy() for f in fields(Aggregates)))

    def baseline(self) -> np.ndarray:
        return baseline(self.base_sum, self.base_n)


def baseline(base_sum: np.ndarray, base_n: np.ndarray) -> np.ndarray:
    """Mean of the baseline hours' measurements (NaN when none), elementwise: any subset of a scan's
    cells gives the same numbers as the whole."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return where(base_n > 0, base_sum / np.maximum(base_n, 1), np.nan).astype(np.float32)


def scan(init: Aggregates, rows: np.ndarray, hour0: int | np.ndarray) -> AggregateSeries:
    """Aggregates after each of ``rows`` ([T, N_VARS] float32, NaN = not measured), the first row
    being hour ``hour0`` and ``init`` the aggregate of every hour before it.

    Batched the same way: ``rows`` [B, T, N_VARS], ``init`` fields [B, N_VARS] (``Aggregates.stack``),
    ``hour0`` [B]; a patient with fewer rows is padded at the end with NaN rows, which change none of
    its earlier aggregates (every field is a running one, along the time axis only)."""
    rows = np.asarray(rows, dtype=np.float32)
    t_len = rows.shape[-2]
    start = np.asarray(hour0, dtype=np.int32)[..., None, None]  # [..., 1, 1]
    step = np.arange(t_len, dtype=np.int32)[:, None]  # [T, 1]
    hours = (start + step)[..., 0]  # [..., T]
    measured = ~np.isnan(rows)
    n = (init.n[..., None, :] + np.cumsum(measured, axis=-2, dtype=np.int32)).astype(np.int32)
    last_i = _running(np.maximum, np.full(init.n.shape, -1, np.int32), where(measured, step, -1))
    at_last = np.clip(last_i, 0, None)
    # the newest index strictly before the newest: the newest as of the row before it
    prev_i = where(last_i >= 1, _along_time(last_i, np.clip(last_i - 1, 0, None)), -1)
    at_prev = np.clip(prev_i, 0, None)
    has_last, has_prev = last_i >= 0, prev_i >= 0
    carried = {f: getattr(init, f)[..., None, :] for f in ("last_v", "last_h", "prev_v", "prev_h")}
    last_v = where(has_last, _along_time(rows, at_last), carried["last_v"])
    last_h = where(has_last, start + at_last, carried["last_h"])
    # the measurement before the newest: in the rows, else the carried newest (when the newest is
    # the first in the rows), else the carried one-before-newest (nothing measured in the rows)
    prev_v = where(has_prev, _along_time(rows, at_prev), where(has_last, carried["last_v"], carried["prev_v"]))
    prev_h = where(has_prev, start + at_prev, where(has_last, carried["last_h"], carried["prev_h"]))
    in_base = measured & (hours < BASELINE_HOURS)[..., None]
    base_vals = where(in_base, rows, 0.0).astype(np.float64)
    base_n = (init.base_n[..., None, :] + np.cumsum(in_base, axis=-2, dtype=np.int32)).astype(np.int32)
    return AggregateSeries(
        n=n,
        last_v=last_v.astype(np.float32),
        last_h=last_h.astype(np.int32),
        prev_v=prev_v.astype(np.float32),
        prev_h=prev_h.astype(np.int32),
        max=_running(np.fmax, init.max, rows),
        min=_running(np.fmin, init.min, rows),
        base_sum=_running(np.add, init.base_sum, base_vals),
        base_n=base_n,
        hours=hours,
    )


# numpy's ufunc.accumulate walks each column as a strided scalar loop: ~10 ns per cell, ~1 ms for a
# batch of 64 windows. Wider than this many columns, stepping through time with the ufunc on whole
# [..., N_VARS] slices is ~10x cheaper; narrower (one stay, offline), accumulate is.
_STEP_THROUGH_TIME_WIDTH = 128


def _running(op: np.ufunc, init: np.ndarray, x: np.ndarray) -> np.ndarray:
    """out[t] = op(out[t-1], x[t]) along the time axis (-2), out[-1] = init: the same calls in the
    same order either way, so both strategies give the same bits (max, min, and the float64 sums
    of ``base_sum``, which numpy accumulates sequentially)."""
    t_len = x.shape[-2]
    dtype = np.result_type(init, x)
    if init[..., 0].size * init.shape[-1] <= _STEP_THROUGH_TIME_WIDTH or t_len == 0:
        return op.accumulate(np.concatenate([init[..., None, :].astype(dtype), x], axis=-2), axis=-2)[..., 1:, :]
    out = np.empty(x.shape, dtype)
    op(init, x[..., 0, :], out=out[..., 0, :])
    for t in range(1, t_len):
        op(out[..., t - 1, :], x[..., t, :], out=out[..., t, :])
    return out


def _along_time(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[..., index[..., t, v], v] (``np.take_along_axis`` on the time axis, by flat index: the
    same elements, several times cheaper on a batch)."""
    *lead, t_len, n_vars = values.shape
    cell = np.arange(int(np.prod(lead, dtype=np.int64)) * t_len * n_vars, step=t_len * n_vars)
    base = cell.reshape(*lead, 1, 1) + np.arange(n_vars)
    return values.ravel()[base + index.astype(np.int64) * n_vars]


def fold(init: Aggregates, rows: np.ndarray, hour0: int) -> Aggregates:
    """The aggregate after ``rows`` (hours that leave the window), continuing from ``init``."""
    if len(rows) == 0:
        return init
    return scan(init, rows, hour0).at(len(rows) - 1)
