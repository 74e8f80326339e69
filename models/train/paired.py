"""Two screened recipes compared on the same stays: a paired bootstrap over stays, per shift.

    .venv/bin/python -m vigil.models.train.paired --a full~psmooth~mono --b full~psmooth~mono~aug50 --seed 1 --json

Reads the raw shift predictions ``screen`` keeps (``~/.cache/vigil/shiftpred/<config>-s<seed>.npz``;
the same seed means the same patient folds, so the two recipes scored the same stays) and, for
every shift both carry, resamples stays with replacement and recomputes each recipe's AUROC and
utility at the threshold it would ship there (the CV shifts: fold f's threshold from the other
folds' OOF scores, the utility averaged over the folds; the unit shifts: the training unit's inner
folds choose it), exactly as ``shifts.figures`` does for single models. A shift with several
thinning seeds is the mean over them, as in the screen's rows. Reports ``b - a`` with its 95 %
interval: the screen's rule of thumb ("under ~0.01 AUROC / ~0.02 utility is noise") as a figure.
The interval is over stays only: a second seed (other folds, other models) shows the rest of the
noise. ``--record models/artifacts/stepping/metrics.json`` keeps it for the card (key ``paired``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vigil.models.train import data, metrics_file, shifts

PRED_DIR = data.CACHE_DIR / "shiftpred"


@dataclass
class Scored:
    """One recipe's scorings of one shift's rows: per copy (thinning seed) the scores, and the
    threshold each row is judged at."""

    scores: list[np.ndarray]  # [rows.sum()] per copy
    threshold: np.ndarray  # [rows.sum()]


def _fold_thresholds(u: shifts.Utility, oof: np.ndarray, row_fold: np.ndarray) -> np.ndarray:
    out = np.zeros(len(row_fold))
    for f in np.unique(row_fold):
        test = row_fold == f
        out[test] = u.threshold(oof[~test], ~test)
    return out


def scorings(
    u: shifts.Utility, pred: shifts.ShiftPredictions, row_fold: np.ndarray, row_unit: np.ndarray
) -> Iterator[tuple[str, np.ndarray, np.ndarray, Scored]]:
    """(shift, rows, group of each row, scored) for every shift ``pred`` carries. Groups are what the
    utility is averaged over: the folds for the CV shifts, one group for a unit shift."""
    everything = np.ones(len(row_fold), bool)
    fold_thr = _fold_thresholds(u, pred.oof[0], row_fold)
    cv_like = {"cv": [pred.oof[0]]}
    cv_like["labs_thinned"] = [v[0] for _, v in sorted(pred.oof_thin.items())]
    cv_like["vitals_thinned"] = [v[0] for _, v in sorted(pred.oof_vitals.items())]
    cv_like.update({shifts.daily_name(h): [v[0]] for h, v in pred.oof_sched.items()})
    for name, scores in cv_like.items():
        if scores:
            yield name, everything, row_fold, Scored(scores, fold_thr)
    for a, key, both in zip(shifts.UNITS, shifts.UNIT_SHIFTS, shifts.COMPOUND, strict=True):
        train, test = row_unit == a, row_unit == 3 - a
        thr = np.full(int(test.sum()), u.threshold(pred.in_unit[a][0], train))
        one = np.zeros(len(row_fold), int)
        yield key, test, one, Scored([pred.other_unit[key][0]], thr)
        thinned = pred.other_unit_thin.get(key, {})
        if thinned:
            yield both, test, one, Scored([v[0] for _, v in sorted(thinned.items())], thr)
        for h, v in pred.other_unit_sched.get(key, {}).items():
            yield shifts.scheduled_compound(key, h), test, one, Scored([v[0]], thr)


class _Ranks:
    """AUROC of fixed scores under stay weights, O(rows) per draw (ties count one half)."""

    def __init__(self, score: np.ndarray, label: np.ndarray) -> None:
        _, self.group = np.unique(score, return_inverse=True)
        self.n_groups = int(self.group.max()) + 1
        self.pos = label.astype(bool)

    def auroc(self, weight: np.ndarray) -> float:
        wp = np.bincount(self.group, np.where(self.pos, weight, 0.0), self.n_groups)
        wn = np.bincount(self.group, np.where(self.pos, 0.0, weight), self.n_groups)
        below = np.cumsum(wn) - wn
        return float((wp * (below + 0.5 * wn)).sum() / (wp.sum() * wn.sum()))


def _stay_sums(u: shifts.Utility, rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.bincount(u.stay_of_row[rows], values, len(u.lengths))


def _utility(gain: np.ndarray, best: np.ndarray, group: np.ndarray, count: np.ndarray) -> float:
    """Mean over groups of (gain / best) with each stay counted ``count`` times."""
    g = np.bincount(group, gain * count)
    b = np.bincount(group, best * count)
    keep = b > 0
    return float(np.mean(g[keep] / b[keep]))


def compare(
    u: shifts.Utility,
    a: shifts.ShiftPredictions,
    b: shifts.ShiftPredictions,
    fold: np.ndarray,
    unit: np.ndarray,
    n: int = 200,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """``b - a`` per shift both carry: AUROC and utility at the shipped threshold, each with a 95 %
    interval over stays resampled with replacement (the same draws for both recipes)."""
    row_fold, row_unit = u.rows_of(fold), u.rows_of(unit)
    theirs = {name: (rows, group, s) for name, rows, group, s in scorings(u, b, row_fold, row_unit)}
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, float]] = {}
    for name, rows, row_group, sa in scorings(u, a, row_fold, row_unit):
        if name not in theirs or len(theirs[name][2].scores) != len(sa.scores):
            continue
        sb = theirs[name][2]
        stays = np.unique(u.stay_of_row[rows])
        group = np.zeros(len(u.lengths), int)
        group[u.stay_of_row[rows]] = row_group[rows]
        best = u.best_gain
        draws = [np.bincount(rng.choice(stays, len(stays)), minlength=len(u.lengths)) for _ in range(n)]
        label = u.labels[rows]
        stay = u.stay_of_row[rows]
        delta_auc, delta_util = np.zeros(n), np.zeros(n)
        point_auc = point_util = 0.0
        whole = np.zeros(len(u.lengths))
        whole[stays] = 1.0
        gain = (u.u1 - u.u0)[rows]
        for x, y in zip(sa.scores, sb.scores, strict=True):
            ra, rb = _Ranks(x, label), _Ranks(y, label)
            ga = _stay_sums(u, rows, np.where(x >= sa.threshold, gain, 0.0))
            gb = _stay_sums(u, rows, np.where(y >= sb.threshold, gain, 0.0))
            point_auc += rb.auroc(np.ones(len(x))) - ra.auroc(np.ones(len(x)))
            point_util += _utility(gb, best, group, whole) - _utility(ga, best, group, whole)
            for i, count in enumerate(draws):
                w = count[stay].astype(float)
                delta_auc[i] += rb.auroc(w) - ra.auroc(w)
                delta_util[i] += _utility(gb, best, group, count) - _utility(ga, best, group, count)
        m = len(sa.scores)
        out[name] = {
            "auroc": round(point_auc / m, 4),
            "auroc_lo": round(float(np.quantile(delta_auc / m, 0.025)), 4),
            "auroc_hi": round(float(np.quantile(delta_auc / m, 0.975)), 4),
            "utility": round(point_util / m, 4),
            "utility_lo": round(float(np.quantile(delta_util / m, 0.025)), 4),
            "utility_hi": round(float(np.quantile(delta_util / m, 0.975)), 4),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--a", required=True, help="the recipe compared against (a screened config)")
    ap.add_argument("--b", required=True, help="the recipe compared (b - a is reported)")
    ap.add_argument("--seed", type=int, action="append", default=[], help="screen seed(s): the same folds")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--pred-dir", type=Path, default=PRED_DIR)
    ap.add_argument("--json", action="store_true", help="a JSON summary as the last line")
    ap.add_argument("--record", type=Path, help="add the comparison to this metrics.json (key `paired`)")
    args = ap.parse_args(argv)
    paths = {(c, s): args.pred_dir / f"{c}-s{s}.npz" for c in (args.a, args.b) for s in args.seed or [1]}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise SystemExit(f"no screened predictions at {', '.join(missing)}: run models.train.screen for them first")
    c = data.load_cohort(log=lambda m: None)
    assert c.unit is not None
    u = shifts.Utility(c.labels, c.lengths)
    summary: dict[str, Any] = {"a": args.a, "b": args.b, "draws": args.draws, "seeds": {}}
    for seed in args.seed or [1]:
        fold = data.grouped_folds(c, args.folds, seed)
        a, b = (shifts.ShiftPredictions.load(paths[(cfg, seed)]) for cfg in (args.a, args.b))
        result = compare(u, a, b, fold, c.unit, args.draws)
        summary["seeds"][str(seed)] = result
        for name, r in result.items():
            print(
                f"seed {seed} {name}: AUROC {r['auroc']:+.4f} [{r['auroc_lo']:+.4f}, {r['auroc_hi']:+.4f}], "
                f"utility {r['utility']:+.4f} [{r['utility_lo']:+.4f}, {r['utility_hi']:+.4f}]"
            )
    if args.record:
        record(args.record, summary)
    if args.json:
        print(json.dumps(summary))
    return 0


def record(path: Path, summary: dict[str, Any]) -> None:
    """One entry per (a, b, seed) under ``paired`` in the metrics.json at ``path``; a rerun replaces its own."""
    metrics = json.loads(path.read_text())
    new = [
        {"a": summary["a"], "b": summary["b"], "seed": int(seed), "draws": summary["draws"], "shifts": shifts_}
        for seed, shifts_ in summary["seeds"].items()
    ]
    keys = {(e["a"], e["b"], e["seed"]) for e in new}
    kept = [e for e in metrics.get("paired", []) if (e["a"], e["b"], e["seed"]) not in keys]
    metrics_file.record(path, "paired", kept + new)


if __name__ == "__main__":
    raise SystemExit(main())
