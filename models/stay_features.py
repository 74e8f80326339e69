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
measured this hour and how stale it is, the standardized max and min since admission, the change
since the previous measurement and from the patient's baseline, and the measurement rate; Age,
Gender, ICU hours. A function of the aggregate of hour t and row t only, so the sequence model can
step hour by hour. A bundle names the inputs its model reads (the manifest's ``sequence_inputs``, in
this order): bundles 2.0-2.5 read ``SEQUENCE_INPUTS_V1``, a subset.

Variables never measured in the training data (EtCO2 in set A) are left out of both: a channel the
model never saw can only reach it as noise (issue 12).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import numpy as np

from vigil.models.aggregates import NO_HOUR, AggregateSeries, baseline
from vigil.models.branchfree import where
from vigil.models.standardize import standardize
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

_SEQ_STATICS: Final[list[str]] = ["Age", "Gender", "icu_hours"]
# the sequence inputs of bundles 2.0-2.5: per variable the standardized newest value, whether it was
# measured this hour and how stale it is; Age, Gender, ICU hours
SEQUENCE_INPUTS_V1: Final[list[str]] = (
    [f"{c}_value" for c in USED_CODES]
    + [f"{c}_measured" for c in USED_CODES]
    + [f"{c}_staleness" for c in USED_CODES]
    + _SEQ_STATICS
)
# and per variable the standardized max and min since admission, the change since the previous
# measurement and from the patient's baseline, and the measurement rate (the "richer inputs")
SEQUENCE_HISTORY_STATS: Final[tuple[str, ...]] = ("max", "min", "delta", "from_baseline", "rate")
SEQUENCE_INPUTS: Final[list[str]] = (
    SEQUENCE_INPUTS_V1[:-3] + [f"{c}_{s}" for c in USED_CODES for s in SEQUENCE_HISTORY_STATS] + _SEQ_STATICS
)
N_SEQUENCE_INPUTS: Final[int] = len(SEQUENCE_INPUTS)
STALE_HOURS: Final[float] = 48.0


def static_vector(static: Mapping[str, float] | None) -> np.ndarray:
    """[Age, Gender] as float32 (NaN when unknown); site descriptors (Unit1/2, HospAdmTime) are ignored."""
    static = static or {}
    return np.array([float(static.get(k, np.nan)) for k in STATIC_CODES], dtype=np.float32)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return where(b > 0, a / where(b > 0, b, 1), np.nan).astype(np.float32)


def _masked_mean(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    return _div(where(m, x, 0.0).sum(-1), m.sum(-1).astype(np.float32))


def _vital_block(rows: np.ndarray, agg: AggregateSeries, pat: np.ndarray, emit: np.ndarray) -> np.ndarray:
    """[E, len(TREND_VITALS) * len(_VITAL_STATS)] from rows[pat, emit-23 .. emit] (NaN before row 0:
    callers pass rows that start at admission or >= 24 h before every emitted row)."""
    pad = np.full((len(rows), ROLLING_HOURS - 1, len(_TV)), np.nan, np.float32)
    full = np.concatenate([pad, rows[..., _TV]], axis=1)
    idx = emit[:, None] + np.arange(ROLLING_HOURS)[None, :]  # rows emit-23..emit in `full`
    w = np.transpose(full[pat[:, None], idx], (0, 2, 1))  # [E, V, 24]
    m = ~np.isnan(w)
    mean6, mean24 = _masked_mean(w[..., -6:], m[..., -6:]), _masked_mean(w, m)
    any24 = m.any(-1)
    min24 = where(any24, where(m, w, np.inf).min(-1), np.nan)
    max24 = where(any24, where(m, w, -np.inf).max(-1), np.nan)
    n24 = m.sum(-1)
    dev = where(m, w - mean24[..., None], 0.0)
    std24 = where(n24 >= 2, np.sqrt(_div((dev * dev).sum(-1), (n24 - 1).astype(np.float32))), np.nan)
    w12, m12 = w[..., -12:], m[..., -12:]
    x = np.arange(12, dtype=np.float32)
    cnt = m12.sum(-1).astype(np.float32)
    sx, sxx = where(m12, x, 0.0).sum(-1), where(m12, x * x, 0.0).sum(-1)
    sy, sxy = where(m12, w12, 0.0).sum(-1), where(m12, w12 * x, 0.0).sum(-1)
    slope = _div(cnt * sxy - sx * sy, where(cnt >= 2, cnt * sxx - sx * sx, 0.0))
    last = agg.last_v[pat, emit][:, _TV]
    diffs = []
    for k in (1, 6, 12):
        back = emit - k
        earlier = where((back >= 0)[:, None], agg.last_v[pat, np.clip(back, 0, None)][:, _TV], np.nan)
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
    statics = static_vector(static)[None]
    return batch_tree_features(rows[None], agg.as_batch(), np.zeros_like(emit), emit, statics)


def batch_tree_features(
    rows: np.ndarray, agg: AggregateSeries, pat: np.ndarray, emit: np.ndarray, statics: np.ndarray
) -> np.ndarray:
    """``tree_features`` of many patients at once: row ``emit[i]`` of patient ``pat[i]`` for each i.
    ``rows`` [B, T, N_VARS] (a shorter stay padded at the end with NaN rows), ``agg`` their batched
    scan, ``statics`` [B, 2] (``static_vector``). Every feature is a function of one (patient, row):
    the numbers do not depend on which other patients share the batch (tested bit for bit)."""
    pat, emit = np.asarray(pat, dtype=np.int64), np.asarray(emit, dtype=np.int64)
    hours = agg.hours[pat, emit].astype(np.float32)
    last = agg.last_v[pat, emit][:, _USED]
    last_h = agg.last_h[pat, emit][:, _USED]
    seen = last_h != NO_HOUR
    since = where(seen, hours[:, None] - last_h, np.nan)
    rate = agg.n[pat, emit][:, _USED] / (hours[:, None] + 1.0)
    delta = last - agg.prev_v[pat, emit][:, _USED]
    from_base = last - baseline(agg.base_sum[pat, emit], agg.base_n[pat, emit])[:, _USED]
    per_var = np.stack(
        [last, since, rate, agg.max[pat, emit][:, _USED], agg.min[pat, emit][:, _USED], delta, from_base], axis=-1
    ).reshape(len(emit), -1)
    val = agg.last_v[pat, emit]
    lab_last_h = agg.last_h[pat, emit][:, _LAB].max(1)
    # labs drawn per row, cumulated after 24 zero rows: lab_24h = labs in rows emit-23..emit
    labs = (~np.isnan(rows[..., _LAB])).sum(-1)
    lab_seen = np.concatenate([np.zeros((len(rows), ROLLING_HOURS), labs.dtype), labs], axis=1).cumsum(1)
    lab_24h = lab_seen[pat, emit + ROLLING_HOURS] - lab_seen[pat, emit]
    derived = np.stack(
        [
            _div(val[:, _I["HR"]], val[:, _I["SBP"]]),
            val[:, _I["SBP"]] - val[:, _I["DBP"]],
            _div(val[:, _I["O2Sat"]], val[:, _I["FiO2"]]),
            _div(val[:, _I["BUN"]], val[:, _I["Creatinine"]]),
            hours,
            lab_24h.astype(np.float32),
            where(lab_last_h != NO_HOUR, hours - lab_last_h, np.nan),
        ],
        axis=-1,
    )
    out = np.concatenate([per_var, _vital_block(rows, agg, pat, emit), derived, statics[pat]], axis=1)
    return out.astype(np.float32)


def sequence_inputs(rows: np.ndarray, agg: AggregateSeries, static: Mapping[str, float] | None) -> np.ndarray:
    """Recurrent-model input of every scanned hour: [T, N_SEQUENCE_INPUTS] float32, row t from the
    aggregate of hour t and row t only."""
    at = np.arange(len(rows))
    return batch_sequence_inputs(rows[None], agg.as_batch(), np.zeros_like(at), at, static_vector(static)[None])


def batch_sequence_inputs(
    rows: np.ndarray, agg: AggregateSeries, pat: np.ndarray, at: np.ndarray, statics: np.ndarray
) -> np.ndarray:
    """``sequence_inputs`` of row ``at[i]`` of patient ``pat[i]`` in a batch (``batch_tree_features``'
    layout): [len(at), N_SEQUENCE_INPUTS] float32."""
    pat, at = np.asarray(pat, dtype=np.int64), np.asarray(at, dtype=np.int64)
    last_h = agg.last_h[pat, at][:, _USED]
    z = standardize(agg.last_v[pat, at])[:, _USED]
    seen = last_h != NO_HOUR
    hours = agg.hours[pat, at]
    stale = where(seen, np.minimum(hours[:, None] - last_h, STALE_HOURS) / STALE_HOURS, 1.0)
    st = statics[pat]
    age = where(np.isnan(st[:, 0]), 0.0, (st[:, 0] - 60.0) / 20.0)
    gender = where(np.isnan(st[:, 1]), 0.5, st[:, 1])
    out = np.empty((len(at), N_SEQUENCE_INPUTS), dtype=np.float32)
    k = len(USED_CODES)
    last = where(seen, z, 0.0)
    out[:, :k] = last
    out[:, k : 2 * k] = ~np.isnan(rows[pat, at][:, _USED])
    out[:, 2 * k : 3 * k] = stale
    zero_nan = lambda a: np.nan_to_num(standardize(a)[:, _USED], nan=0.0)  # noqa: E731
    prev = agg.prev_v[pat, at]
    base = baseline(agg.base_sum[pat, at], agg.base_n[pat, at])
    history = np.stack(
        [
            zero_nan(agg.max[pat, at]),
            zero_nan(agg.min[pat, at]),
            where(np.isnan(prev[:, _USED]), 0.0, last - zero_nan(prev)),
            where(np.isnan(base[:, _USED]), 0.0, last - zero_nan(base)),
            agg.n[pat, at][:, _USED] / (hours[:, None] + 1.0),
        ],
        axis=-1,
    )
    out[:, 3 * k : -3] = history.reshape(len(at), -1)
    out[:, -3] = age
    out[:, -2] = gender
    out[:, -1] = np.log1p(hours.astype(np.float32)) / np.log(100.0)
    return out
