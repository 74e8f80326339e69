"""Features over the whole stay, computable from the 48-hour window plus the carried aggregates.

Row t of every function here is a function of (the aggregates through hour t, rows t-23..t, the
statics, t). The aggregates (``models.aggregates``) hold everything older than the window, so the
stream (carry + window) and offline prediction (a scan of the whole stay) compute the same numbers
(``models.stepping``; tested equal bit for bit).

Tree features (``tree_features``), after the reference that held up on an unseen hospital
(issue 12: forward-filled values with time since measured, measurement rates, history over the
whole stay, multi-scale vital statistics, clinicians' ratios):

- every variable: newest value (however old), hours since it was measured, measurement rate since
  admission, max and min since admission, change since the previous measurement, change from the
  patient's own baseline (mean of the first 12 ICU hours);
- vital signs: 6/24 h mean, 24 h min/max/sd, 12 h slope, change over 1, 6 and 12 h, 24 h count;
- shock index (HR/SBP), pulse pressure, SpO2/FiO2, BUN/creatinine;
- habits: ICU hours, lab values drawn in 24 h, hours since any lab; Age, Gender.

Sequence inputs (``sequence_inputs``): per variable the standardized newest value, whether it was
measured this hour and how stale it is; Age, Gender, ICU hours. A function of the aggregate of
hour t and row t only, so the recurrent model can step hour by hour from a carried state.

Variables never measured in the training data (EtCO2 in set A) are left out of both: a channel the
model never saw can only reach it as noise (issue 12).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np

from vigil.models.aggregates import NO_HOUR, AggregateSeries
from vigil.models.features import standardize
from vigil.schemas.codes import DYNAMIC_CODES, LABS, VITALS

UNSEEN_IN_TRAINING: Final[tuple[str, ...]] = ("EtCO2",)
USED_CODES: Final[tuple[str, ...]] = tuple(c for c in DYNAMIC_CODES if c not in UNSEEN_IN_TRAINING)
_USED = np.array([DYNAMIC_CODES.index(c) for c in USED_CODES])
TREND_VITALS: Final[tuple[str, ...]] = tuple(c for c in VITALS if c not in UNSEEN_IN_TRAINING)
_TV = np.array([DYNAMIC_CODES.index(c) for c in TREND_VITALS])
_LAB = np.array([DYNAMIC_CODES.index(c) for c in LABS])
_I = {c: i for i, c in enumerate(DYNAMIC_CODES)}
STATIC_CODES: Final[tuple[str, ...]] = ("Age", "Gender")
ROLLING_HOURS: Final[int] = 24  # the longest look-back of a window statistic (<= the 48 h window)

_VAR_STATS = ("last", "hours_since", "rate", "max_stay", "min_stay", "delta", "from_baseline")
_VITAL_STATS = ("mean6h", "mean24h", "min24h", "max24h", "std24h", "slope12h", "diff1h", "diff6h", "diff12h", "n24h")
DERIVED: Final[tuple[str, ...]] = ("shock_index", "pulse_pressure", "spo2_fio2", "bun_creatinine")
HABITS: Final[tuple[str, ...]] = ("icu_hours", "lab_values_24h", "hours_since_lab")
TREE_FEATURES: Final[list[str]] = (
    [f"{c}_{s}" for c in USED_CODES for s in _VAR_STATS]
    + [f"{c}_{s}" for c in TREND_VITALS for s in _VITAL_STATS]
    + list(DERIVED)
    + list(HABITS)
    + list(STATIC_CODES)
)
N_TREE_FEATURES: Final[int] = len(TREE_FEATURES)
# Features that say only how often or how long ago something was measured: they carry signal
# (issue 12's reference lost 0.05 utility without them) but explain nothing at the bedside, so
# explanations list them apart from the physiology (issue 14).
MISSINGNESS_FEATURES: Final[frozenset[str]] = frozenset(
    [f"{c}_{s}" for c in USED_CODES for s in ("hours_since", "rate")]
    + [f"{c}_n24h" for c in TREND_VITALS]
    + list(HABITS)
)

SEQUENCE_INPUTS: Final[list[str]] = (
    [f"{c}_value" for c in USED_CODES]
    + [f"{c}_measured" for c in USED_CODES]
    + [f"{c}_staleness" for c in USED_CODES]
    + ["Age", "Gender", "icu_hours"]
)
N_SEQUENCE_INPUTS: Final[int] = len(SEQUENCE_INPUTS)
STALE_HOURS: Final[float] = 48.0


def static_vector(static: Mapping[str, float] | None) -> np.ndarray:
    """[Age, Gender] as float32 (NaN when unknown); site descriptors (Unit1/2, HospAdmTime) are ignored."""
    static = static or {}
    return np.array([float(static.get(k, np.nan)) for k in STATIC_CODES], dtype=np.float32)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan).astype(np.float32)


def _masked_mean(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    return _div(np.where(m, x, 0.0).sum(-1), m.sum(-1).astype(np.float32))


def _vital_block(rows: np.ndarray, agg: AggregateSeries, emit: np.ndarray) -> np.ndarray:
    """[len(emit), len(TREND_VITALS) * len(_VITAL_STATS)] from rows[emit-23 .. emit] (NaN before row 0:
    callers pass rows that start at admission or >= 24 h before every emitted row)."""
    pad = np.full((ROLLING_HOURS - 1, len(_TV)), np.nan, np.float32)
    full = np.concatenate([pad, rows[:, _TV]])
    idx = emit[:, None] + np.arange(ROLLING_HOURS)[None, :]  # rows emit-23..emit in `full`
    w = np.transpose(full[idx], (0, 2, 1))  # [E, V, 24]
    m = ~np.isnan(w)
    mean6, mean24 = _masked_mean(w[..., -6:], m[..., -6:]), _masked_mean(w, m)
    any24 = m.any(-1)
    min24 = np.where(any24, np.where(m, w, np.inf).min(-1), np.nan)
    max24 = np.where(any24, np.where(m, w, -np.inf).max(-1), np.nan)
    n24 = m.sum(-1)
    dev = np.where(m, w - mean24[..., None], 0.0)
    std24 = np.where(n24 >= 2, np.sqrt(_div((dev * dev).sum(-1), (n24 - 1).astype(np.float32))), np.nan)
    w12, m12 = w[..., -12:], m[..., -12:]
    x = np.arange(12, dtype=np.float32)
    cnt = m12.sum(-1).astype(np.float32)
    sx, sxx = np.where(m12, x, 0.0).sum(-1), np.where(m12, x * x, 0.0).sum(-1)
    sy, sxy = np.where(m12, w12, 0.0).sum(-1), np.where(m12, w12 * x, 0.0).sum(-1)
    slope = _div(cnt * sxy - sx * sy, np.where(cnt >= 2, cnt * sxx - sx * sx, 0.0))
    last = agg.last_v[emit][:, _TV]
    diffs = []
    for k in (1, 6, 12):
        back = emit - k
        earlier = np.where((back >= 0)[:, None], agg.last_v[np.clip(back, 0, None)][:, _TV], np.nan)
        diffs.append(last - earlier)
    block = np.stack([mean6, mean24, min24, max24, std24, slope, *diffs, n24.astype(np.float32)], axis=-1)
    return block.reshape(len(emit), -1)


def tree_features(
    rows: np.ndarray, agg: AggregateSeries, emit: np.ndarray, static: Mapping[str, float] | None
) -> np.ndarray:
    """Tree features of the rows ``emit`` (indices into ``rows``): [len(emit), N_TREE_FEATURES] float32.

    ``rows``: hourly rows [T, N_VARS]; ``agg = scan(carry, rows, hour0)``. Needs rows[e-23..e] for every
    emitted e (or the stay's start): the stream passes the window, offline the whole stay."""
    emit = np.asarray(emit, dtype=np.int64)
    hours = agg.hours[emit].astype(np.float32)
    last = agg.last_v[emit][:, _USED]
    last_h = agg.last_h[emit][:, _USED]
    seen = last_h != NO_HOUR
    since = np.where(seen, hours[:, None] - last_h, np.nan)
    rate = agg.n[emit][:, _USED] / (hours[:, None] + 1.0)
    delta = last - agg.prev_v[emit][:, _USED]
    from_base = last - agg.baseline()[emit][:, _USED]
    per_var = np.stack(
        [last, since, rate, agg.max[emit][:, _USED], agg.min[emit][:, _USED], delta, from_base], axis=-1
    ).reshape(len(emit), -1)
    val = agg.last_v[emit]
    lab_last_h = agg.last_h[emit][:, _LAB].max(1)
    pad = np.full((ROLLING_HOURS - 1, len(_LAB)), False)
    lab_seen = np.concatenate([pad, ~np.isnan(rows[:, _LAB])]).sum(1).cumsum()
    lab_24h = lab_seen[emit + ROLLING_HOURS - 1] - np.r_[0, lab_seen][emit]
    derived = np.stack(
        [
            _div(val[:, _I["HR"]], val[:, _I["SBP"]]),
            val[:, _I["SBP"]] - val[:, _I["DBP"]],
            _div(val[:, _I["O2Sat"]], val[:, _I["FiO2"]]),
            _div(val[:, _I["BUN"]], val[:, _I["Creatinine"]]),
            hours,
            lab_24h.astype(np.float32),
            np.where(lab_last_h != NO_HOUR, hours - lab_last_h, np.nan),
        ],
        axis=-1,
    )
    statics = np.broadcast_to(static_vector(static), (len(emit), len(STATIC_CODES)))
    out = np.concatenate([per_var, _vital_block(rows, agg, emit), derived, statics], axis=1)
    return out.astype(np.float32)


def sequence_inputs(rows: np.ndarray, agg: AggregateSeries, static: Mapping[str, float] | None) -> np.ndarray:
    """Recurrent-model input of every scanned hour: [T, N_SEQUENCE_INPUTS] float32, row t from the
    aggregate of hour t and row t only."""
    t_len = len(rows)
    z = standardize(agg.last_v)[:, _USED]
    seen = agg.last_h[:, _USED] != NO_HOUR
    stale = np.where(seen, np.minimum(agg.hours[:, None] - agg.last_h[:, _USED], STALE_HOURS) / STALE_HOURS, 1.0)
    st = static_vector(static)
    age = 0.0 if np.isnan(st[0]) else (st[0] - 60.0) / 20.0
    gender = 0.5 if np.isnan(st[1]) else st[1]
    out = np.empty((t_len, N_SEQUENCE_INPUTS), dtype=np.float32)
    k = len(USED_CODES)
    out[:, :k] = np.where(seen, z, 0.0)
    out[:, k : 2 * k] = ~np.isnan(rows[:, _USED])
    out[:, 2 * k : 3 * k] = stale
    out[:, 3 * k] = age
    out[:, 3 * k + 1] = gender
    out[:, 3 * k + 2] = np.log1p(agg.hours.astype(np.float32)) / np.log(100.0)
    return out
