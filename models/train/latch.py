"""A latched risk: each hour's score held up by a decaying memory of the stay's earlier scores.

    .venv/bin/python -m vigil.models.train.latch --config full~psmooth~mono --decay 0.8 --seed 1 --seed 2

The challenge output is one label per hour, the risk at or above the threshold. A risk that wobbles
around the threshold switches its label on and off, and every hour off in the 12 hours before onset
is reward lost, every hour on after a spike a false alarm. The alert agent already holds an alert
until the risk falls below 0.8 x its threshold (``models.alerting``, hysteresis). ``latched`` is the
label-free, threshold-free analogue on the score itself: s'_t = max(s_t, decay * s'_{t-1}) within a
stay, so the latched score stays above any threshold for log(threshold / peak) / log(decay) hours
after a peak. It is causal (hour t reads hours <= t of the same stay) and needs one number per patient
in the stream's state, so it could be served if the shift tests said so.

It is screened on a recipe's cached shift predictions (``screen``'s ``shiftpred/<config>-s<seed>.npz``),
no refit: every array is latched per stay, then scored by ``shifts.figures`` exactly as the screen
scores it (thresholds chosen on the latched training-side scores), and recorded as the screen row
``<config>~latch<decay>``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vigil.models.train import data, labels, screen, shifts


def decayed_max(score: np.ndarray, stay: np.ndarray, decay: float) -> np.ndarray:
    """[k, n] scores of rows grouped in contiguous stays (``stay`` [n]): s'_t = max(s_t, decay * s'_{t-1})
    within each stay, s'_0 = s_0."""
    score = np.asarray(score, dtype=np.float64)
    if score.shape[-1] == 0:
        return score.astype(np.float32)
    start = np.r_[True, stay[1:] != stay[:-1]]
    first = np.flatnonzero(start)
    group = np.cumsum(start) - 1
    pos = np.arange(len(stay)) - first[group]
    padded = np.full((score.shape[0], len(first), int(pos.max()) + 1), -np.inf)
    padded[:, group, pos] = score
    for t in range(1, padded.shape[-1]):
        padded[..., t] = np.maximum(padded[..., t], decay * padded[..., t - 1])
    return padded[:, group, pos].astype(np.float32)


def latched(
    pred: shifts.ShiftPredictions, u: shifts.Utility, unit: np.ndarray, decay: float
) -> shifts.ShiftPredictions:
    """Every array of ``pred`` latched per stay (``decayed_max``)."""
    row_unit = u.rows_of(unit)
    stay = u.stay_of_row
    of_unit = {a: stay[row_unit == a] for a in shifts.UNITS}

    def every(v: np.ndarray) -> np.ndarray:
        return decayed_max(v, stay, decay)

    def test_unit(key: str, v: np.ndarray) -> np.ndarray:  # "unit1->unit2": the rows of unit 2
        return decayed_max(v, of_unit[int(key[-1])], decay)

    return shifts.ShiftPredictions(
        every(pred.oof),
        {s: every(v) for s, v in pred.oof_thin.items()},
        {k: test_unit(k, v) for k, v in pred.other_unit.items()},
        {a: decayed_max(v, of_unit[a], decay) for a, v in pred.in_unit.items()},
        {s: every(v) for s, v in pred.oof_vitals.items()},
        {k: {s: test_unit(k, v) for s, v in by.items()} for k, by in pred.other_unit_thin.items()},
        {h: every(v) for h, v in pred.oof_sched.items()},
        {k: {h: test_unit(k, v) for h, v in by.items()} for k, by in pred.other_unit_sched.items()},
        {s: every(v) for s, v in pred.oof_panels.items()},
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", action="append", default=[], help="a screened config (its shiftpred file)")
    ap.add_argument("--decay", type=float, default=0.8, help="the latch's memory per hour, in (0, 1)")
    ap.add_argument("--seed", type=int, action="append", default=[])
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--out", default=str(data.CACHE_DIR / "screen.jsonl"))
    args = ap.parse_args(argv)
    if not 0.0 < args.decay < 1.0:
        raise SystemExit(f"--decay {args.decay:g} is not in (0, 1): give the memory per hour, e.g. 0.8")
    c = data.load_cohort()
    assert c.unit is not None
    y, w = labels.utility_targets(c.labels, c.lengths)
    u = shifts.Utility(c.labels, c.lengths)
    for seed in args.seed or [1]:
        fold = data.grouped_folds(c, args.folds, seed)
        for config in args.config:
            t0 = time.perf_counter()
            pred = shifts.ShiftPredictions.load(screen.PRED_DIR / f"{config}-s{seed}.npz")
            name = f"{config}~latch{args.decay:g}"
            held = latched(pred, u, c.unit, args.decay)
            held.save(screen.PRED_DIR / f"{name}-s{seed}.npz")
            result = shifts.figures(u, held, fold, c.unit, y, w)
            screen.record(args.out, name, seed, 0, time.perf_counter() - t0, result, screen.tree_settings(config))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
