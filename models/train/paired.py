"""Two screened recipes compared on the same stays: a paired bootstrap over stays, per shift.

    .venv/bin/python -m vigil.models.train.paired --a full~psmooth~mono --b full~psmooth~mono~aug50 --seed 1 --json

Reads the raw shift predictions ``screen`` keeps (``~/.cache/vigil/shiftpred/<config>-s<seed>.npz``;
the same seed means the same patient folds, so the two recipes scored the same stays) and, for
every shift both carry, resamples stays with replacement and recomputes each recipe's AUROC and
utility at the threshold it would ship there (the CV shifts: fold f's threshold from the other
folds' OOF scores, the utility averaged over the folds; the unit shifts: the training unit's inner
folds choose it), exactly as ``shifts.figures`` does for single models; ``--rule served-risk``: the
unit shifts at the site threshold a worker serves where the site sets its septic-stay prevalence
and its mean risk (``threshold_rules``' ``served-risk``, fixed per scoring before resampling);
``--rule prev<k>`` / ``logit<d>``: ``threshold_rules``' rule picks the threshold wherever the training
side picks one (each CV fold's from the other folds, each unit shift's from the training unit), the
rule a bundle could ship as its default threshold.
``worst``: each recipe's worst case over every shift but the randomly thinned labs (what the
``~thin``/``~aug`` recipes were taught on), its minimum taken within each draw: each draw resamples
the cohort's stays once and every shift weighs its own stays by that one resample (``stay_draws``;
entries recorded before 7 December drew each shift's stays anew, so their ``worst`` interval was not
a bootstrap of the worst case). A shift with several
thinning seeds is the mean over them, as in the screen's rows. Reports ``b - a`` with its 95 %
interval: the screen's rule of thumb ("under ~0.01 AUROC / ~0.02 utility is noise") as a figure.
The interval is over stays only: a second seed (other folds, other models) shows the rest of the
noise. ``--record models/artifacts/stepping/metrics.json`` keeps it for the card (key ``paired``).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vigil.models.train import data, metrics_file, screen, shifts, threshold_rules
from vigil.models.train.threshold_rules import best_rule

PRED_DIR = screen.PRED_DIR  # where the screen keeps each recipe's shift predictions


RULES = ("best", "served-risk", "prev<k>", "logit<d>")  # the last two: threshold_rules' default-threshold rules
Chooser = Callable[[shifts.Utility, np.ndarray, np.ndarray], float]  # (utility, scores, rows) -> threshold
RANDOM_THINNING = "labs_thinned"  # the shifts with it in their name: what the ~thin/~aug recipes were taught on
SCHEDULED_LABS = "labs_every"  # ... and what ~augdaily was taught on


def taught_on(config: str) -> tuple[str, ...]:
    """The parts of a shift's name that mark the shifts ``config``'s training copies taught it (``worst``
    leaves them out): labs drawn once a day for ``~augdaily``, both kinds for ``~augmix<K>``, else labs
    thinned at random."""
    if screen.mixed(config):
        return (RANDOM_THINNING, SCHEDULED_LABS)
    return (SCHEDULED_LABS,) if screen.scheduled(config) else (RANDOM_THINNING,)


@dataclass
class Scored:
    """One recipe's scorings of one shift's rows: per copy (thinning seed) the scores, and the
    threshold each row of that copy is judged at."""

    scores: list[np.ndarray]  # [rows.sum()] per copy
    thresholds: list[np.ndarray]  # [rows.sum()] per copy


def _fold_thresholds(
    u: shifts.Utility, oof: np.ndarray, row_fold: np.ndarray, choose: Chooser = best_rule
) -> np.ndarray:
    out = np.zeros(len(row_fold))
    for f in np.unique(row_fold):
        test = row_fold == f
        out[test] = choose(u, oof[~test], ~test)
    return out


def scorings(
    u: shifts.Utility,
    pred: shifts.ShiftPredictions,
    row_fold: np.ndarray,
    row_unit: np.ndarray,
    site: dict[str, list[float]] | None = None,
    choose: Chooser = best_rule,
) -> Iterator[tuple[str, np.ndarray, np.ndarray, Scored]]:
    """(shift, rows, group of each row, scored) for every shift ``pred`` carries. Groups are what the
    utility is averaged over: the folds for the CV shifts, one group for a unit shift. ``site``: per
    unit shift, the threshold of each of its scorings (``shifts.unit_scorings`` order) instead of the
    training unit's best one (``site_rule_thresholds``). ``choose``: how the training side picks its
    threshold from its own scores wherever it picks one (the best utility as shipped; a
    ``threshold_rules`` rule such as ``prev1.5``)."""
    everything = np.ones(len(row_fold), bool)
    fold_thr = _fold_thresholds(u, pred.oof[0], row_fold, choose)
    cv_like = {"cv": [pred.oof[0]]}
    cv_like["labs_thinned"] = [v[0] for _, v in sorted(pred.oof_thin.items())]
    cv_like["vitals_thinned"] = [v[0] for _, v in sorted(pred.oof_vitals.items())]
    cv_like.update({shifts.daily_name(h): [v[0]] for h, v in pred.oof_sched.items()})
    cv_like[shifts.PANELS_OMITTED] = [v[0] for _, v in sorted(pred.oof_panels.items())]
    for name, scores in cv_like.items():
        if scores:
            yield name, everything, row_fold, Scored(scores, [fold_thr] * len(scores))
    for a, key, both in zip(shifts.UNITS, shifts.UNIT_SHIFTS, shifts.COMPOUND, strict=True):
        train, test = row_unit == a, row_unit == 3 - a
        scored = shifts.unit_scorings(pred, key)  # as drawn, the thinned copies, the schedules
        chosen = (site or {}).get(key, [choose(u, pred.in_unit[a][0], train)] * len(scored))
        thr = [np.full(int(test.sum()), t) for t in chosen]
        one = np.zeros(len(row_fold), int)
        yield key, test, one, Scored([scored[0][0]], thr[:1])
        k = len(pred.other_unit_thin.get(key, {}))
        if k:
            yield both, test, one, Scored([v[0] for v in scored[1 : 1 + k]], thr[1 : 1 + k])
        schedules = pred.other_unit_sched.get(key, {})
        for h, v, t in zip(schedules, scored[1 + k :], thr[1 + k :], strict=True):
            yield shifts.scheduled_compound(key, h), test, one, Scored([v[0]], [t])


SiteRule = Callable[[shifts.Utility, shifts.ShiftPredictions, np.ndarray], dict[str, list[float]]]


def site_rule_thresholds(
    u: shifts.Utility, pred: shifts.ShiftPredictions, unit: np.ndarray, prevalences: tuple[float, ...] | None = None
) -> dict[str, list[float]]:
    """``served-risk``: per unit shift, each scoring's threshold as a worker serves it where the site
    sets its septic-stay prevalence and its mean risk is read from the scores (``threshold_rules``;
    ``prevalences``: the grid of the site table, the bundle's by default)."""
    rule = threshold_rules.SiteRule(1.0, prevalences or threshold_rules.PREVALENCES, mean_risk=True)
    found = threshold_rules.site_thresholds(u, pred, unit, rule)
    return {key: [t for _, t, _ in scored] for key, _, scored in found}


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


def stay_draws(n_stays: int, n: int, seed: int) -> np.ndarray:
    """[n, stays] how often each stay of the cohort is drawn in each of ``n`` resamples of its stays
    with replacement. Drawn once for the comparison and shared by every shift (a shift weighs only its
    own stays), so ``worst``'s minimum over shifts within a draw is the worst case of one resample:
    a stay-level bootstrap of the worst case."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.choice(n_stays, n_stays), minlength=n_stays) for _ in range(n)]).astype(np.int32)


def compare(
    u: shifts.Utility,
    a: shifts.ShiftPredictions,
    b: shifts.ShiftPredictions,
    fold: np.ndarray,
    unit: np.ndarray,
    n: int = 200,
    seed: int = 0,
    site_a: SiteRule | None = None,
    site_b: SiteRule | None = None,
    taught: tuple[str, ...] = (RANDOM_THINNING,),
    choose_a: Chooser = best_rule,
    choose_b: Chooser = best_rule,
) -> dict[str, dict[str, Any]]:
    """``b - a`` per shift both carry: AUROC and utility at the threshold each would ship (the training
    side's best; with ``site_a`` / ``site_b``, e.g. ``site_rule_thresholds``, that recipe's unit shifts
    at the site threshold, so that two rules compare on the same predictions when ``a`` is ``b``), each
    with a 95 % interval over stays resampled with replacement (the same draws for both recipes and for
    every shift: ``stay_draws``), and
    under ``worst`` each recipe's worst case over the shifts no recipe was taught on (every shift whose
    name lacks every part of ``taught``: ``taught_on`` the compared recipe) with the interval of its difference (the
    minimum taken per draw). ``choose_a`` / ``choose_b``: each recipe's rule for the thresholds its
    training side picks (``scorings``)."""
    row_fold, row_unit = u.rows_of(fold), u.rows_of(unit)
    thr_a, thr_b = (site_a(u, a, unit) if site_a else None), (site_b(u, b, unit) if site_b else None)
    theirs = {name: (rows, group, s) for name, rows, group, s in scorings(u, b, row_fold, row_unit, thr_b, choose_b)}
    draws = stay_draws(len(u.lengths), n, seed)
    out: dict[str, dict[str, Any]] = {}
    drawn: dict[str, np.ndarray] = {}  # shift -> [point + n draws, (a AUROC, b AUROC, a utility, b utility)]
    for name, rows, row_group, sa in scorings(u, a, row_fold, row_unit, thr_a, choose_a):
        if name not in theirs or len(theirs[name][2].scores) != len(sa.scores):
            continue
        sb = theirs[name][2]
        stays = np.unique(u.stay_of_row[rows])
        group = np.zeros(len(u.lengths), int)
        group[u.stay_of_row[rows]] = row_group[rows]
        whole = np.zeros(len(u.lengths), int)
        whole[stays] = 1
        # the cohort's draws restricted to this shift's stays: every shift sees the same resample
        counts = [whole, *(draw * whole for draw in draws)]
        label, stay, gain = u.labels[rows], u.stay_of_row[rows], (u.u1 - u.u0)[rows]
        cells = np.zeros((n + 1, 4))
        for x, y, ta, tb in zip(sa.scores, sb.scores, sa.thresholds, sb.thresholds, strict=True):
            ra, rb = _Ranks(x, label), _Ranks(y, label)
            ga = _stay_sums(u, rows, np.where(x >= ta, gain, 0.0))
            gb = _stay_sums(u, rows, np.where(y >= tb, gain, 0.0))
            for i, count in enumerate(counts):
                w = count[stay].astype(float)
                cells[i] += (
                    ra.auroc(w),
                    rb.auroc(w),
                    _utility(ga, u.best_gain, group, count),
                    _utility(gb, u.best_gain, group, count),
                )
        drawn[name] = cells / len(sa.scores)
        out[name] = _difference(drawn[name])
    untaught = [k for k in drawn if not any(t in k for t in taught)]
    if untaught:
        worst = np.stack([drawn[k] for k in untaught]).min(axis=0)  # each column's minimum over shifts, per draw
        out["worst"] = {
            **_difference(worst),
            "a_auroc": round(float(worst[0, 0]), 4),
            "b_auroc": round(float(worst[0, 1]), 4),
            "a_utility": round(float(worst[0, 2]), 4),
            "b_utility": round(float(worst[0, 3]), 4),
            "over": untaught,
        }
    return out


def _difference(cells: np.ndarray) -> dict[str, float]:
    """``b - a`` at the point (row 0) with the 95 % interval over the draws (rows 1..)."""
    auc, util = cells[:, 1] - cells[:, 0], cells[:, 3] - cells[:, 2]
    return {
        "auroc": round(float(auc[0]), 4),
        "auroc_lo": round(float(np.quantile(auc[1:], 0.025)), 4),
        "auroc_hi": round(float(np.quantile(auc[1:], 0.975)), 4),
        "utility": round(float(util[0]), 4),
        "utility_lo": round(float(np.quantile(util[1:], 0.025)), 4),
        "utility_hi": round(float(np.quantile(util[1:], 0.975)), 4),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--a", required=True, help="the recipe compared against (a screened config)")
    ap.add_argument("--b", required=True, help="the recipe compared (b - a is reported)")
    ap.add_argument("--seed", type=int, action="append", default=[], help="screen seed(s): the same folds")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument(
        "--rule",
        default="best",
        help=f"one of {', '.join(RULES)}: the training side's best threshold (as shipped), the served site "
        "threshold on the unit shifts, or a threshold_rules rule wherever the training side picks",
    )
    ap.add_argument("--rule-b", help="b's own rule (default: --rule); --a X --b X compares two rules")
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
    rule_b = args.rule_b or args.rule
    rule = args.rule if rule_b == args.rule else f"{args.rule}->{rule_b}"
    summary: dict[str, Any] = {"a": args.a, "b": args.b, "draws": args.draws, "rule": rule, "seeds": {}}
    (site_a, choose_a), (site_b, choose_b) = (_rule(r) for r in (args.rule, rule_b))
    for seed in args.seed or [1]:
        fold = data.grouped_folds(c, args.folds, seed)
        a, b = (shifts.ShiftPredictions.load(paths[(cfg, seed)]) for cfg in (args.a, args.b))
        taught = taught_on(args.b)
        result = compare(
            u,
            a,
            b,
            fold,
            c.unit,
            args.draws,
            site_a=site_a,
            site_b=site_b,
            taught=taught,
            choose_a=choose_a,
            choose_b=choose_b,
        )
        summary["seeds"][str(seed)] = result
        for name, r in result.items():
            if name == "worst":
                print(
                    f"seed {seed} worst of {len(r['over'])} (none with {' or '.join(taught)}): a {r['a_auroc']:.3f} / "
                    f"{r['a_utility']:.3f}, b {r['b_auroc']:.3f} / {r['b_utility']:.3f}"
                )
            print(
                f"seed {seed} {name}: AUROC {r['auroc']:+.4f} [{r['auroc_lo']:+.4f}, {r['auroc_hi']:+.4f}], "
                f"utility {r['utility']:+.4f} [{r['utility_lo']:+.4f}, {r['utility_hi']:+.4f}]"
            )
    if args.record:
        record(args.record, summary)
    if args.json:
        print(json.dumps(summary))
    return 0


def _rule(name: str) -> tuple[SiteRule | None, Chooser]:
    """A rule's name -> (its site thresholds of the unit shifts, its chooser of the training side's)."""
    if name == "served-risk":
        return site_rule_thresholds, best_rule
    if name == "best" or name.startswith(("prev", "logit")):
        return None, threshold_rules.parse(name)
    raise SystemExit(f"unknown rule {name}: expected one of {', '.join(RULES)} (e.g. prev1.5)")


def record(path: Path, summary: dict[str, Any]) -> None:
    """One entry per (a, b, seed, rule) under ``paired`` in the metrics.json at ``path``; a rerun replaces
    its own. Entries at the shipped threshold (rule ``best``) carry no ``rule`` key; ``shared_draws``
    marks the entries whose draws every shift shared (``stay_draws``; the card flags those without it)."""
    metrics = json.loads(path.read_text())
    rule = {"rule": summary["rule"]} if summary.get("rule", "best") != "best" else {}
    new = [
        {
            "a": summary["a"],
            "b": summary["b"],
            "seed": int(seed),
            **rule,
            "draws": summary["draws"],
            "shared_draws": True,
            "shifts": shifts_,
        }
        for seed, shifts_ in summary["seeds"].items()
    ]

    def key(e: dict[str, Any]) -> tuple[str, str, int, str]:
        return e["a"], e["b"], e["seed"], e.get("rule", "best")

    keys = {key(e) for e in new}
    kept = [e for e in metrics.get("paired", []) if key(e) not in keys]
    metrics_file.record(path, "paired", kept + new)


if __name__ == "__main__":
    raise SystemExit(main())
