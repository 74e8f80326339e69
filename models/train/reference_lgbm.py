"""Issue 12's reference LightGBM, rebuilt as an experiment (never shipped): the yardstick that tells
how to read the shift tests.

Issue 12 reports a "plain LightGBM built quickly on set A" that reached AUROC 0.795 / utility 0.289
on a hospital system we never see: utility-derived labels and weights, ~330 causal features over the
whole stay including measurement habits (hours since measured, counts, rates, ICU length of stay),
200 strongly regularized trees, threshold from set A. Its code is not available; this module builds
it as faithfully as that description allows, independently of ``models.stay_features``:

- every channel measured in set A (33; EtCO2 never is): forward-filled value, hours since measured,
  measurement count and rate since admission, max and min since admission (198);
- vital signs (7): mean, sd, min and max over the last 6, 12 and 24 h (84); change of the
  forward-filled value over 1, 3, 6 and 12 h (28);
- shock index, pulse pressure, SpO2/FiO2, BUN/creatinine (4); NEWS2, qSOFA and SIRS totals (3,
  ``models.offline.rule_scores``); ICU hours, Age, Gender (3). 320 in all.

Row t uses rows 0..t only (causal; ``tests/unit/models/test_reference_lgbm.py``). Unit1/Unit2 and
HospAdmTime are not inputs: the unit is constant on the training side of the unit shifts, and the
cohort cache does not keep HospAdmTime. Trained with the bundle's targets and ``trees.fit_weighted``
at bundle 2.1's settings, 200 shallow trees (``screen.REFERENCE_SETTINGS``), whatever the bundle ships:
a fixed yardstick; against ``full~pv21`` the comparison isolates features.
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vigil.models.stay_features import TREND_VITALS, USED_CODES
from vigil.models.train.data import CACHE_DIR, Cohort, cached_hour_block
from vigil.schemas.codes import DYNAMIC_CODES

_USED = np.array([DYNAMIC_CODES.index(c) for c in USED_CODES])
_TV = np.array([DYNAMIC_CODES.index(c) for c in TREND_VITALS])
_I = {c: i for i, c in enumerate(DYNAMIC_CODES)}
WINDOWS: Final[tuple[int, ...]] = (6, 12, 24)
LAGS: Final[tuple[int, ...]] = (1, 3, 6, 12)
RULES: Final[tuple[str, ...]] = ("NEWS2", "qSOFA", "SIRS")
_VAR_STATS = ("ffill", "hours_since", "count", "rate", "max_stay", "min_stay")
FEATURES_VERSION: Final[int] = 1  # bump when a definition changes: the cache key
HABIT_STATS: Final[tuple[str, ...]] = ("hours_since", "count", "rate")

NAMES: Final[list[str]] = (
    [f"{c}_{s}" for c in USED_CODES for s in _VAR_STATS]
    + [f"{c}_{s}{w}h" for c in TREND_VITALS for w in WINDOWS for s in ("mean", "sd", "min", "max")]
    + [f"{c}_diff{k}h" for c in TREND_VITALS for k in LAGS]
    + ["shock_index", "pulse_pressure", "spo2_fio2", "bun_creatinine"]
    + list(RULES)
    + ["icu_hours", "Age", "Gender"]
)
HABIT_FEATURES: Final[frozenset[str]] = frozenset([f"{c}_{s}" for c in USED_CODES for s in HABIT_STATS] + ["icu_hours"])


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def stay_features(matrix: np.ndarray, age: float, gender: float, rules: np.ndarray) -> np.ndarray:
    """[T, len(NAMES)] float32 for one stay: ``matrix`` [T, len(DYNAMIC_CODES)] (NaN = not measured),
    ``rules`` [T, 3] (NEWS2, qSOFA, SIRS per hour)."""
    x = np.asarray(matrix, np.float32)[:, _USED]
    t_len = len(x)
    hours = np.arange(t_len)
    measured = ~np.isnan(x)
    last = np.maximum.accumulate(np.where(measured, hours[:, None], -1), axis=0)
    seen = last >= 0
    ffill = np.where(seen, x[np.clip(last, 0, None), np.arange(x.shape[1])], np.nan)
    since = np.where(seen, hours[:, None] - last, np.nan)
    count = np.cumsum(measured, axis=0)
    rate = count / (hours[:, None] + 1.0)
    run_max = np.fmax.accumulate(x, axis=0)
    run_min = np.fmin.accumulate(x, axis=0)
    per_var = np.stack([ffill, since, count, rate, run_max, run_min], axis=-1).reshape(t_len, -1)

    raw_v = np.asarray(matrix, np.float32)[:, _TV]
    windows = []
    for w in WINDOWS:
        pad = np.vstack([np.full((w - 1, raw_v.shape[1]), np.nan, np.float32), raw_v])
        win = sliding_window_view(pad, w, axis=0)  # [T, V, w]: rows t-w+1 .. t
        m = ~np.isnan(win)
        n = m.sum(-1)
        total = np.where(m, win, 0.0).sum(-1)
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        dev = np.where(m, win - mean[..., None], 0.0)
        sd = np.where(n >= 2, np.sqrt((dev * dev).sum(-1) / np.maximum(n, 1)), np.nan)
        lo = np.where(n > 0, np.where(m, win, np.inf).min(-1), np.nan)
        hi = np.where(n > 0, np.where(m, win, -np.inf).max(-1), np.nan)
        windows.append(np.stack([mean, sd, lo, hi], axis=-1))  # [T, V, 4]
    rolling = np.stack(windows, axis=2).reshape(t_len, -1)  # vital-major, then window, then stat
    vital_ffill = ffill[:, [list(_USED).index(i) for i in _TV]]
    diffs = []
    for k in LAGS:
        earlier = np.vstack([np.full((min(k, t_len), vital_ffill.shape[1]), np.nan), vital_ffill[: max(t_len - k, 0)]])
        diffs.append(vital_ffill - earlier)
    lag = np.stack(diffs, axis=-1).reshape(t_len, -1)

    def col(code: str) -> np.ndarray:
        return ffill[:, list(_USED).index(_I[code])]

    derived = np.stack(
        [
            _ratio(col("HR"), col("SBP")),
            col("SBP") - col("DBP"),
            _ratio(col("O2Sat"), col("FiO2")),
            _ratio(col("BUN"), col("Creatinine")),
        ],
        axis=-1,
    )
    tail = np.stack([hours.astype(np.float64), np.full(t_len, age), np.full(t_len, gender)], axis=-1)
    out = np.concatenate([per_var, rolling, lag, derived, np.asarray(rules, np.float64), tail], axis=1)
    return out.astype(np.float32)


def _key(tag: str, c: Cohort) -> str:
    src = f"{FEATURES_VERSION}|{'|'.join(NAMES)}|{tag}-{len(c.lengths)}-{int(c.lengths.sum())}"
    return hashlib.sha256(src.encode()).hexdigest()[:12]


def cohort_features(c: Cohort, tag: str, log=print) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Reference features of every hour of ``c`` (memory-mapped cache under ``~/.cache/vigil``).
    The rule totals are recomputed from ``c.matrix`` (a thinned cohort scores its own rules)."""
    from vigil.models.offline import rule_scores

    path = CACHE_DIR / f"reference-{tag}-{_key(tag, c)}.npy"
    o = c.offsets

    def stay_rows(p: int) -> np.ndarray:
        m = c.matrix[o[p] : o[p + 1]]
        r = rule_scores(m)
        rules = np.stack([r[k] for k in RULES], axis=-1)
        return stay_features(m, float(c.age[p]), float(c.gender[p]), rules)

    return cached_hour_block(path, c, len(NAMES), stay_rows, f"reference features {tag}", log)
