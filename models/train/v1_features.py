"""The v1 bundle's 48-hour window features, kept as a training-side yardstick only (``screen --config
v1trees``, the "v1 trees" rows of the stepping card): the v1 window bundle no longer ships or serves.
Serving computes ``models.stay_features`` (window rows + carried whole-stay aggregates).

A patient's last <= 48 hourly rows -> model inputs. Every feature of hour t is a function of rows max(0, t-47)..t only
(window-bounded and causal): forward fill, rolling statistics and hours-since-measurement never
look further back than ``WINDOW_HOURS``. So the streaming agent, which keeps the last 48 hourly
rows of a patient in Redis, computes exactly what offline prediction computes for that hour.

Implementation: a stay is left-padded with 47 NaN rows and viewed as T overlapping windows of 48
rows (one per hour); every statistic reduces one window. ``window_features(w)`` is the same
computation on a single window, so equality with ``stay_features(matrix)[t]`` holds by construction.

Generalization (PhysioNet 2019 README): hospitals differ in how often they draw labs, so features
that count measurements encode site habits. Only two such "habit" features exist here
(``HABIT_FEATURES``); per-variable missingness is carried by NaN in the ``last`` value (the tree
model routes NaN explicitly) and by availability masks in the sequence inputs. Site descriptors
(Unit1, Unit2, HospAdmTime, ICULOS) are never used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np

from vigil.models.standardize import standardize as _standardize
from vigil.models.window import WINDOW_HOURS  # the one definition: the stream's window is the features'
from vigil.schemas.codes import DYNAMIC_CODES, LABS, VITALS

N_DYNAMIC: Final[int] = len(DYNAMIC_CODES)
VITAL_CODES: Final[tuple[str, ...]] = tuple(VITALS)
LAB_CODES: Final[tuple[str, ...]] = tuple(LABS)
STATIC_CODES: Final[tuple[str, ...]] = ("Age", "Gender")
_IDX = {c: i for i, c in enumerate(DYNAMIC_CODES)}
_NV = len(VITAL_CODES)

# Vitals: level, short-term mean, 24 h spread and trajectory. Labs: level and change since the
# previous draw in the window. Trends describe the patient's course and transfer across sites
# better than absolute levels alone.
_VITAL_STATS = ("last", "mean6h", "min24h", "max24h", "std24h", "slope12h", "trend24h")
_LAB_STATS = ("last", "delta")
DERIVED_FEATURES: Final[tuple[str, ...]] = ("shock_index", "pulse_pressure", "bun_creatinine")
HABIT_FEATURES: Final[tuple[str, ...]] = ("habit_hours_since_lab", "habit_lab_values_24h")

FEATURE_NAMES: Final[list[str]] = (
    [f"{c}_{s}" for c in VITAL_CODES for s in _VITAL_STATS]
    + [f"{c}_{s}" for c in LAB_CODES for s in _LAB_STATS]
    + list(DERIVED_FEATURES)
    + list(HABIT_FEATURES)
    + list(STATIC_CODES)
)
N_FEATURES: Final[int] = len(FEATURE_NAMES)


def static_vector(static: Mapping[str, float] | None) -> np.ndarray:
    """[Age, Gender] as float32 (NaN when unknown); other keys (site descriptors) are ignored."""
    static = static or {}
    return np.array([float(static.get(k, np.nan)) for k in STATIC_CODES], dtype=np.float32)


def _as_matrix(matrix: np.ndarray) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float32)
    if m.ndim != 2 or m.shape[1] != N_DYNAMIC:
        raise ValueError(f"expected [T, {N_DYNAMIC}] rows in DYNAMIC_CODES order, got {m.shape}")
    return m


def _padded_windows(matrix: np.ndarray) -> np.ndarray:
    """[T, V, 48] contiguous windows; position 47 is the current hour, earlier rows NaN-padded."""
    pad = np.full((WINDOW_HOURS - 1, matrix.shape[1]), np.nan, dtype=np.float32)
    full = np.concatenate([pad, matrix], axis=0)
    view = np.lib.stride_tricks.sliding_window_view(full, WINDOW_HOURS, axis=0)  # [T, V, 48]
    return np.ascontiguousarray(view)


def _masked_mean(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    n = m.sum(-1)
    s = np.where(m, x, 0.0).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, s / np.maximum(n, 1), np.nan).astype(np.float32)


def _features_from_windows(w: np.ndarray, static: np.ndarray) -> np.ndarray:
    """w: [N, V, 48] float32 windows; static: [N, 2] -> [N, F] float32."""
    n = w.shape[0]
    mask = ~np.isnan(w)
    pos = np.arange(WINDOW_HOURS, dtype=np.int32)
    last_idx = np.where(mask, pos, -1).max(-1)  # [N, V]
    has = last_idx >= 0
    last = np.take_along_axis(w, np.clip(last_idx, 0, None)[..., None], -1)[..., 0]
    last = np.where(has, last, np.nan)
    prev_idx = np.where(mask & (pos < last_idx[..., None]), pos, -1).max(-1)
    prev = np.take_along_axis(w, np.clip(prev_idx, 0, None)[..., None], -1)[..., 0]
    delta = np.where(prev_idx >= 0, last - prev, np.nan)

    vw, vm = w[:, :_NV], mask[:, :_NV]
    mean6 = _masked_mean(vw[..., -6:], vm[..., -6:])
    w24, m24 = vw[..., -24:], vm[..., -24:]
    any24 = m24.any(-1)
    min24 = np.where(any24, np.where(m24, w24, np.inf).min(-1), np.nan)
    max24 = np.where(any24, np.where(m24, w24, -np.inf).max(-1), np.nan)
    mean24 = _masked_mean(w24, m24)
    n24 = m24.sum(-1)
    dev = np.where(m24, w24 - mean24[..., None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        std24 = np.where(n24 >= 2, np.sqrt((dev * dev).sum(-1) / np.maximum(n24 - 1, 1)), np.nan)
    # least-squares slope (units per hour) over the last 12 h, >= 2 measurements
    w12, m12 = vw[..., -12:], vm[..., -12:]
    x = np.arange(12, dtype=np.float32)
    cnt = m12.sum(-1).astype(np.float32)
    sx = np.where(m12, x, 0.0).sum(-1)
    sxx = np.where(m12, x * x, 0.0).sum(-1)
    sy = np.where(m12, w12, 0.0).sum(-1)
    sxy = np.where(m12, w12 * x, 0.0).sum(-1)
    den = cnt * sxx - sx * sx
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where((cnt >= 2) & (den > 0), (cnt * sxy - sx * sy) / np.where(den > 0, den, 1), np.nan)
    earlier = _masked_mean(vw[..., -24:-6], vm[..., -24:-6])
    trend = mean6 - earlier

    vital_block = np.stack([last[:, :_NV], mean6, min24, max24, std24, slope, trend], axis=-1)
    lab_block = np.stack([last[:, _NV:], delta[:, _NV:]], axis=-1)

    hr, sbp, dbp = last[:, _IDX["HR"]], last[:, _IDX["SBP"]], last[:, _IDX["DBP"]]
    bun, cr = last[:, _IDX["BUN"]], last[:, _IDX["Creatinine"]]
    with np.errstate(invalid="ignore", divide="ignore"):
        shock = np.where(sbp > 0, hr / np.where(sbp > 0, sbp, 1), np.nan)
        bun_cr = np.where(cr > 0, bun / np.where(cr > 0, cr, 1), np.nan)
    lab_mask = mask[:, _NV:]
    lab_any_idx = np.where(lab_mask.any(1), pos, -1).max(-1)
    hours_since_lab = np.where(lab_any_idx >= 0, WINDOW_HOURS - 1 - lab_any_idx, WINDOW_HOURS)
    lab_values_24h = lab_mask[..., -24:].sum((1, 2))

    out = np.concatenate(
        [
            vital_block.reshape(n, -1),
            lab_block.reshape(n, -1),
            np.stack([shock, sbp - dbp, bun_cr], axis=-1),
            np.stack([hours_since_lab, lab_values_24h], axis=-1),
            static,
        ],
        axis=1,
    )
    return out.astype(np.float32)


def stay_features(matrix: np.ndarray, static: Mapping[str, float] | None) -> np.ndarray:
    """[T, V] hourly rows (NaN = not measured) -> [T, F] features; row t uses rows t-47..t only."""
    m = _as_matrix(matrix)
    st = np.broadcast_to(static_vector(static), (len(m), len(STATIC_CODES)))
    if len(m) == 0:
        return np.zeros((0, N_FEATURES), dtype=np.float32)
    return _features_from_windows(_padded_windows(m), st)


def window_features(window: np.ndarray, static: Mapping[str, float] | None) -> np.ndarray:
    """Features of the newest hour of ``window`` (the last <= 48 hourly rows): [F] float32."""
    m = _as_matrix(window)[-WINDOW_HOURS:]
    if len(m) == 0:
        raise ValueError("empty window")
    pad = np.full((WINDOW_HOURS - len(m), N_DYNAMIC), np.nan, dtype=np.float32)
    w = np.ascontiguousarray(np.concatenate([pad, m], axis=0).T[None])  # [1, V, 48]
    return _features_from_windows(w, static_vector(static)[None])[0]


def batch_window_features(windows: Sequence[np.ndarray], statics: Sequence[Mapping[str, float] | None]) -> np.ndarray:
    """``window_features`` for many patients at once: [B, F]."""
    w = np.full((len(windows), N_DYNAMIC, WINDOW_HOURS), np.nan, dtype=np.float32)
    for i, win in enumerate(windows):
        m = _as_matrix(win)[-WINDOW_HOURS:]
        if len(m) == 0:
            raise ValueError("empty window")
        w[i, :, WINDOW_HOURS - len(m) :] = m.T
    st = np.stack([static_vector(s) for s in statics]) if len(statics) else np.zeros((0, 2), np.float32)
    return _features_from_windows(w, st)


# ---------------------------------------------------------------- sequence model inputs

# No "row present" channel: left padding looks exactly like hours with nothing measured yet, so the
# sequence model is not told the ICU length of stay (a site habit, PhysioNet 2019 README).

SEQUENCE_CHANNELS: Final[list[str]] = (
    [f"{c}_value" for c in DYNAMIC_CODES] + [f"{c}_available" for c in DYNAMIC_CODES] + ["Age", "Gender"]
)
N_SEQUENCE_CHANNELS: Final[int] = len(SEQUENCE_CHANNELS)


def _sequence_from_windows(z: np.ndarray, static: np.ndarray) -> np.ndarray:
    """z: [N, 48, V] standardized windows (NaN = not measured / padding),
    static [N, 2] -> [N, 48, Fs]."""
    n = z.shape[0]
    mask = ~np.isnan(z)
    pos = np.arange(WINDOW_HOURS, dtype=np.int32)[None, :, None]
    idx = np.maximum.accumulate(np.where(mask, pos, -1), axis=1)  # forward fill inside the window
    avail = idx >= 0
    filled = np.take_along_axis(z, np.clip(idx, 0, None), axis=1)
    out = np.empty((n, WINDOW_HOURS, N_SEQUENCE_CHANNELS), dtype=np.float32)
    out[..., :N_DYNAMIC] = np.where(avail, filled, 0.0)
    out[..., N_DYNAMIC : 2 * N_DYNAMIC] = avail
    out[..., 2 * N_DYNAMIC] = np.where(np.isnan(static[:, 0]), 0.0, (static[:, 0] - 60.0) / 20.0)[:, None]
    out[..., 2 * N_DYNAMIC + 1] = np.where(np.isnan(static[:, 1]), 0.5, static[:, 1])[:, None]
    return out


def sequence_inputs(window: np.ndarray, static: Mapping[str, float] | None) -> np.ndarray:
    """Sequence-model input for the newest hour of ``window``: [48, Fs] float32, left-padded."""
    return batch_sequence_inputs([window], [static])[0]


def batch_sequence_inputs(windows: Sequence[np.ndarray], statics: Sequence[Mapping[str, float] | None]) -> np.ndarray:
    w = np.full((len(windows), WINDOW_HOURS, N_DYNAMIC), np.nan, dtype=np.float32)
    for i, win in enumerate(windows):
        m = _as_matrix(win)[-WINDOW_HOURS:]
        if len(m) == 0:
            raise ValueError("empty window")
        w[i, WINDOW_HOURS - len(m) :] = _standardize(m)
    st = np.stack([static_vector(s) for s in statics]) if len(statics) else np.zeros((0, 2), np.float32)
    return _sequence_from_windows(w, st)


def stay_sequence_inputs(
    matrix: np.ndarray, static: Mapping[str, float] | None, hours: np.ndarray | None = None
) -> np.ndarray:
    """Sequence inputs for the given hours (default: every hour) of one stay: [len(hours), 48, Fs]."""
    m = _as_matrix(matrix)
    hours = np.arange(len(m)) if hours is None else np.asarray(hours, dtype=np.int64)
    pad = np.full((WINDOW_HOURS - 1, N_DYNAMIC), np.nan, dtype=np.float32)
    full = np.concatenate([pad, _standardize(m)], axis=0)
    rows = hours[:, None] + np.arange(WINDOW_HOURS)[None, :]  # window of hour h = full[h : h+48]
    w = full[rows]
    st = np.broadcast_to(static_vector(static), (len(hours), 2))
    return _sequence_from_windows(w, st)
