"""Threshold rules judged by the shift tests on cached shift predictions (no refitting).

    .venv/bin/python -m vigil.models.train.threshold_rules --pred full-s1 --pred full-s2 \
        --rule best --rule prev2 --rule prev3 --rule logit0.5 --rule logit1 --rule share

The unit shifts lose most of their utility at the threshold (best-threshold utility 0.30-0.34
against 0.15-0.30 at the chosen one). Each rule here picks the threshold from the training side's
out-of-fold scores only, exactly where ``shifts.figures`` picks it, so the figures stay honest:

- ``best``: the threshold of maximum utility on the training OOF scores (the shipped rule);
- ``prev<k>``: maximin over a prevalence shift: septic stays' utility weighted by 1/k, 1 and k
  (label shift, Saerens et al. 2002, Neural Comput 14:21), the threshold whose worst utility over
  the three is highest;
- ``logit<d>``: maximin over a calibration shift: the threshold whose worst utility over shifts of
  the scores by -d..+d in log-odds is highest (the centre of the broadest plateau of the curve);
- ``share``: the training OOF alert share at the ``best`` threshold carried to the test rows as a
  quantile of their own scores (a fixed alert rate: label-free, but it needs the new site's score
  distribution, so it is reported for the unit and thinning shifts only, never shipped as is);
- ``site``: the test unit's septic-stay prevalence is known (one aggregate number, no row labels):
  the training utility reweighted by the odds ratio of the two prevalences (prior shift);
- ``served<c>``: ``site`` as the worker serves it (``models.site_threshold``): the training side's
  grid of prevalences, interpolated, under an alert-share ceiling of ``c`` (none without ``c``);
- ``site-risk``, ``served-risk<c>``: the same, with the test unit's mean risk known too (label-free:
  the scores themselves): the prevalence odds ratio divided by the odds ratio of the mean risks, so
  the part of the prior shift the model already follows is not corrected twice. ``--prevalence-error
  <x>``: the site states x times its true prevalence; ``--assume-training-prevalence``: it gives only
  its mean risk, read at the training unit's prevalence (what the worker refuses to serve).

``--site-table <oof.npz> --wards`` reads set A's own ICU units as wards of one site (no shift: the
models saw both): the served rules per unit against the shipped threshold (a rule that moves the
threshold where the model already knows the ward's risk loses utility there).

``--bootstrap`` reports each rule minus ``best`` on the same predictions (paired over stays);
``--site-table ~/.cache/vigil/oof-stepping.npz --record models/artifacts/stepping/metrics.json``
stores the ``site`` rule's thresholds of the shipped combined risk per prevalence (for the card).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vigil.models.site_threshold import Site, choose_threshold, model_shift, odds
from vigil.models.train import data, labels, shifts

# the site prevalences a bundle stores thresholds for (models.site_threshold serves between them);
# set A: 8.8 % (Reyna et al. 2020), the challenge's hospital B 5.7 %
PREVALENCES = (*(round(0.01 * k, 2) for k in range(1, 9)), 0.088, *(round(0.01 * k, 2) for k in range(9, 31)))
SHARE_GRID = np.round(np.arange(0.005, 0.6001, 0.005), 3)  # alert_share_curve: shares of set-A hours
SHIFTS = ("cv", "labs_thinned", "unit1->unit2", "unit2->unit1")
# the rule the bundle's default threshold is chosen by (``python -m vigil.models.train``): since 2.4 the
# best worst-case utility over septic-stay prevalences 1/1.5, 1 and 1.5 times set A's (k from the
# challenge's two published sites, 8.8 % and 5.7 %); 2.3 shipped ``best``
BUNDLE_RULE = "prev1.5"
COMPOUND = shifts.COMPOUND
Rule = Callable[[shifts.Utility, np.ndarray, np.ndarray], float]


def _curve_parts(u: shifts.Utility, score: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """Thresholds (descending) and the cumulative gain of septic and non-septic stays above each."""
    septic_row = (u.best_gain > 0)[u.stay_of_row[rows]]
    gain = (u.u1 - u.u0)[rows]
    order = np.argsort(-score, kind="stable")
    s = score[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    g_sep = np.cumsum(np.where(septic_row, gain, 0.0)[order])[last]
    g_non = np.cumsum(np.where(~septic_row, gain, 0.0)[order])[last]
    best = float(u.best_gain[np.unique(u.stay_of_row[rows])].sum())
    return s[last], g_sep, g_non, np.asarray(best)


def _at_odds_ratio(parts: tuple[np.ndarray, ...], ratio: float) -> float:
    """The threshold of maximum utility when septic stays weigh ``ratio`` times what they weigh in
    training (a prior shift; ``parts``: ``_curve_parts``)."""
    thr, g_sep, g_non, best = parts
    return float(thr[int(np.argmax((ratio * g_sep + g_non) / (ratio * best)))])


def prevalence_maximin(k: float) -> Rule:
    ratios = (1 / k, 1.0, k)

    def rule(u: shifts.Utility, score: np.ndarray, rows: np.ndarray) -> float:
        thr, g_sep, g_non, best = _curve_parts(u, score, rows)
        util = np.stack([(r * g_sep + g_non) / (r * best) for r in ratios])
        return float(thr[int(np.argmax(util.min(axis=0)))])

    return rule


def _to_logit(x: np.ndarray) -> np.ndarray:
    if x.min() >= 0 and x.max() <= 1:  # a probability; the mean-logit combiner's scores already are
        x = np.clip(x, 1e-6, 1 - 1e-6)
        return np.log(x / (1 - x))
    return x


def calibration_maximin(d: float, steps: int = 5) -> Rule:
    def rule(u: shifts.Utility, score: np.ndarray, rows: np.ndarray) -> float:
        thr, g_sep, g_non, best = _curve_parts(u, score, rows)
        util = (g_sep + g_non) / best
        z = _to_logit(thr)  # descending
        # utility at a cut z': that of the lowest distinct score >= z' (ascending view for searchsorted)
        z_asc, u_asc = z[::-1], util[::-1]
        worst = np.full(len(z), np.inf)
        for delta in np.linspace(-d, d, steps):
            i = np.searchsorted(z_asc, z + delta, side="left")
            shifted = np.where(i < len(z_asc), u_asc[np.minimum(i, len(z_asc) - 1)], 0.0)
            worst = np.minimum(worst, shifted)
        return float(thr[int(np.argmax(worst))])

    return rule


def best_rule(u: shifts.Utility, score: np.ndarray, rows: np.ndarray) -> float:
    return shifts.Utility.threshold(u, score, rows)


def parse(name: str) -> Rule:
    """``best``, ``prev<k>`` or ``logit<d>`` (SystemExit with the expected forms for anything else)."""
    try:
        if name == "best":
            return best_rule
        if name.startswith("prev"):
            return prevalence_maximin(float(name[4:]))
        if name.startswith("logit"):
            return calibration_maximin(float(name[5:]))
    except ValueError:
        pass
    raise SystemExit(f"unknown rule {name}: expected best, prev<k> or logit<d> (e.g. prev1.5)")


def with_rule(rule: Rule) -> type[shifts.Utility]:
    class Ruled(shifts.Utility):
        def threshold(self, score: np.ndarray, rows: np.ndarray) -> float:
            return rule(self, score, rows)

    return Ruled


def _unit_shifts(
    pred: shifts.ShiftPredictions, row_unit: np.ndarray
) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per unit shift of single-model predictions: (name, training rows, test rows, the training
    unit's inner-fold scores, the test unit's scores)."""
    for a in shifts.UNITS:
        b = 3 - a
        key = f"unit{a}->unit{b}"
        yield key, row_unit == a, row_unit == b, pred.in_unit[a][0], pred.other_unit[key][0]


def share_figures(
    u: shifts.Utility, pred: shifts.ShiftPredictions, fold: np.ndarray, unit: np.ndarray
) -> dict[str, Any]:
    """The fixed-alert-rate rule: the training side's alert share at its best threshold, applied as a
    quantile of the test rows' own scores (single-model predictions only)."""
    row_fold, row_unit = u.rows_of(fold), u.rows_of(unit)
    out: dict[str, Any] = {}
    for key, train, test, s_train, s_test in _unit_shifts(pred, row_unit):
        share = float((s_train >= u.threshold(s_train, train)).mean())
        out[key] = shifts.block(u, s_test, test, float(np.quantile(s_test, 1 - share)))
    utils = []
    for thin in pred.oof_thin.values():
        per_fold = []
        for f in np.unique(row_fold):
            test = row_fold == f
            train = ~test
            share = float((pred.oof[0][train] >= u.threshold(pred.oof[0][train], train)).mean())
            per_fold.append(u.utility(thin[0][test], test, float(np.quantile(thin[0][test], 1 - share))))
        utils.append(float(np.mean(per_fold)))
    out["labs_thinned"] = {"utility": round(float(np.mean(utils)), 4)}
    return out


def site_prevalence_figures(
    u: shifts.Utility,
    pred: shifts.ShiftPredictions,
    unit: np.ndarray,
    combiner: shifts.Combiner = shifts.single,
    yw: tuple[np.ndarray, np.ndarray] | None = None,
    served: float | None = None,
    prevalences: tuple[float, ...] = PREVALENCES,
    mean_risk: bool = False,
    prevalence_error: float = 1.0,
    assume_training_prevalence: bool = False,
) -> dict[str, Any]:
    """The unit shifts with the test unit's septic-stay prevalence known (a site's coding statistics,
    no row labels): the training side's utility reweighted by the odds ratio of the two prevalences
    (prior shift, Saerens et al. 2002), its best threshold applied to the test unit. ``served`` (an
    alert-share ceiling; 1.0 for none): the threshold as ``models.site_threshold`` serves it instead,
    from the training side's grid of prevalences and its alert-share curve. ``mean_risk``: the test
    unit's mean score is known too (``models.site_threshold.effective_prevalence``). Where the
    predictions carry the compound (protocol 4), each unit shift is scored again with the test unit's
    labs thinned, the mean risk read from the thinned scores (mean over the thinning seeds); where they
    carry protocol 6, with its labs drawn at most once a day too. ``prevalence_error``: the site
    states this multiple of its true prevalence; ``assume_training_prevalence``: it states the
    training side's instead, whatever its own (``SiteRule``)."""
    out: dict[str, Any] = {}
    rule = SiteRule(served, prevalences, mean_risk, prevalence_error, assume_training_prevalence)
    for key, test, scored in site_thresholds(u, pred, unit, rule, combiner, yw):
        blocks = [{**shifts.block(u, s, test, t), "odds_ratio": round(r, 3)} for s, t, r in scored]
        out.update(shifts.named_unit_blocks(pred, key, blocks))
    if mean_risk and pred.oof_thin:
        y, w = yw if yw is not None else (u.labels.astype(float), np.ones(len(u.labels)))
        out["labs_thinned_pooled"] = _thinned_with_mean_risk(u, pred, combiner, y, w)
    return out


@dataclass(frozen=True)
class SiteRule:
    """How a site's threshold is chosen (``site_prevalence_figures``): ``served`` (an alert-share
    ceiling, 1.0 for none) as ``models.site_threshold`` serves it from the grid ``prevalences``, else
    the exact rule; ``mean_risk``: the test unit's mean score is known too; ``prevalence_error``: the
    site states its prevalence as this multiple of the true one (a site that miscounts its septic stays);
    ``assume_training_prevalence``: the site knows only its mean risk and is read at the training side's
    prevalence (all of the prior shift taken for the model's own)."""

    served: float | None = None
    prevalences: tuple[float, ...] = PREVALENCES
    mean_risk: bool = False
    prevalence_error: float = 1.0
    assume_training_prevalence: bool = False


def site_rule_name(base: str, prevalence_error: float = 1.0, assumed: bool = False) -> str:
    """The recorded name of a site rule read at a prevalence other than the site's own:
    ``served-risk x1.5`` (``--prevalence-error``), ``served-risk assumed`` (``--assume-training-prevalence``)."""
    return base + (f" x{prevalence_error:g}" if prevalence_error != 1.0 else "") + (" assumed" if assumed else "")


def misstated(name: str) -> bool:
    """Whether a recorded rule name is one of ``site_rule_name``'s misstated ones."""
    return " x" in name or name.endswith(" assumed")


def site_thresholds(
    u: shifts.Utility,
    pred: shifts.ShiftPredictions,
    unit: np.ndarray,
    rule: SiteRule,
    combiner: shifts.Combiner = shifts.single,
    yw: tuple[np.ndarray, np.ndarray] | None = None,
) -> Iterator[tuple[str, np.ndarray, list[tuple[np.ndarray, float, float]]]]:
    """Per unit shift (``site_prevalence_figures``' rules): (shift, test rows, per scoring of the
    test unit in ``shifts.unit_scorings`` order its scores, the site rule's threshold and odds ratio)."""
    row_unit = u.rows_of(unit)
    septic = u.best_gain > 0
    y, w = yw if yw is not None else (u.labels.astype(float), np.ones(len(u.labels)))
    for a, key in zip(shifts.UNITS, shifts.UNIT_SHIFTS, strict=True):
        b = 3 - a
        pa, pb = septic[unit == a].mean(), septic[unit == b].mean() * rule.prevalence_error
        pb = pa if rule.assume_training_prevalence else pb
        ratio = float(odds(pb) / odds(pa))
        train, test = row_unit == a, row_unit == b
        score = combiner(pred.in_unit[a], y[train], w[train])  # fitted on the training unit only
        s_train = score(pred.in_unit[a])
        parts = _curve_parts(u, s_train, train)
        combined: dict[str, Any] = {}
        if rule.served is not None:
            combined["threshold"] = best_rule(u, s_train, train)
            pin_site_tables(combined, by_site_prevalence(u, s_train, train, rule.prevalences), s_train)
        scored = []  # protocols 4 and 6: the test unit's labs thinned, drawn by routine too
        for s_test in (score(v) for v in shifts.unit_scorings(pred, key)):
            r = ratio  # mean_risk: divided by the part of the prior shift the scores already follow
            r /= model_shift(float(s_test.mean()), float(s_train.mean())) if rule.mean_risk else 1.0
            if rule.served is None:  # the exact rule at the test unit's prevalence
                t = _at_odds_ratio(parts, r)
            else:  # as the worker serves it: the stored grid, interpolated, under the ceiling
                site = Site(float(pb), rule.served, float(s_test.mean()) if rule.mean_risk else None)
                t = choose_threshold(combined, site).threshold
            scored.append((s_test, t, r))
        yield key, test, scored


def _thinned_with_mean_risk(
    u: shifts.Utility,
    pred: shifts.ShiftPredictions,
    combiner: shifts.Combiner,
    y: np.ndarray,
    w: np.ndarray,
) -> dict[str, Any]:
    """Thinned labs (the same stays and prevalence, fewer lab draws) with the thinned scores' mean
    risk known: the threshold from all of set A's OOF scores (pooled, not nested: both rules alike,
    so compare within this block, not with the nested ``labs_thinned`` of ``shifts.figures``), at
    the shipped rule and read with the mean risk (the prevalence is unchanged, so only the model's
    own move counts)."""
    rows = np.ones(len(u.labels), bool)
    score = combiner(pred.oof, y, w)
    s_train = score(pred.oof)
    parts = _curve_parts(u, s_train, rows)
    shipped = best_rule(u, s_train, rows)
    out: dict[str, Any] = {}
    for seed, thin in sorted(pred.oof_thin.items()):
        s_test = score(thin)
        t = _at_odds_ratio(parts, 1.0 / model_shift(float(s_test.mean()), float(s_train.mean())))
        out[str(seed)] = {
            "shipped": round(u.utility(s_test, rows, shipped), 4),
            "mean_risk": round(u.utility(s_test, rows, t), 4),
            "mean_risk_ratio": round(float(s_test.mean() / s_train.mean()), 4),
        }
    return out


def by_site_prevalence(
    u: shifts.Utility, score: np.ndarray, rows: np.ndarray, prevalences: tuple[float, ...]
) -> list[dict[str, float]]:
    """The threshold a site with a known septic-stay prevalence would use (the prior-shift rule of
    ``site_prevalence_figures`` applied to all of ``rows``), and the share of training hours it flags."""
    septic = u.best_gain > 0
    p0 = float(septic[np.unique(u.stay_of_row[rows])].mean())
    parts = _curve_parts(u, score, rows)
    out = []
    for p in prevalences:
        t = _at_odds_ratio(parts, odds(p) / odds(p0))
        out.append(
            {"prevalence": p, "threshold": round(t, 9), "training_alert_share": round(float((score >= t).mean()), 5)}
        )
    return out


def alert_share_curve(score: np.ndarray, also: Sequence[float] = ()) -> dict[str, list[float]]:
    """Thresholds of the out-of-fold risk about every 0.5 % of set-A hours flagged (and ``also``:
    the shipped and site thresholds, exact where they are served), each with the exact share of
    hours at or above it (the calibrated risk is tied in runs: a curve point is a value the risk
    takes, never a share it cannot flag)."""
    grid = np.quantile(score, 1 - SHARE_GRID, method="higher")
    ths = np.unique(np.round(np.r_[grid, np.asarray(also, np.float64)], 9))[::-1]
    share = [round(float((score >= t).mean()), 5) for t in ths]
    return {"threshold": [float(t) for t in ths], "share": share}


def pin_site_tables(combined: dict[str, Any], table: list[dict[str, float]], score: np.ndarray) -> None:
    """Store the tables the served threshold is chosen from (``models.site_threshold``) in a bundle's
    ``combined`` manifest entry: the site table and the alert-share curve of ``score`` (the OOF risk),
    exact at the shipped and the table's thresholds (the shipped threshold itself is not touched), and
    the mean of ``score`` (``training_mean_risk``)."""
    combined["site_thresholds"] = table
    combined["training_mean_risk"] = round(float(score.mean()), 8)  # what a site's mean risk is read against
    combined["alert_share_curve"] = alert_share_curve(score, [combined["threshold"], *(r["threshold"] for r in table)])


def ward_figures(
    c: data.Cohort, score: np.ndarray, table: list[dict[str, float]], default: str = BUNDLE_RULE
) -> dict[str, Any]:
    """Set A's ICU units (and the stays without one) as wards of one site, scored by ``score`` (the
    OOF risk the table was built from): the utility of each ward at the shipped default threshold
    (chosen on all of ``score`` by the rule ``default``), at set A's best (``set_a_best``), at its own
    prevalence's (``site``) and with its mean risk beside it (``site-risk``), as served, and the best
    in hindsight. In-sample for every rule alike: it asks only whether a rule moves the threshold
    where the model already knows the ward."""
    assert c.unit is not None
    u = shifts.Utility(c.labels, c.lengths)
    septic = u.best_gain > 0
    everything = np.ones(len(score), bool)
    combined: dict[str, Any] = {"threshold": parse(default)(u, score, everything)}
    set_a_best = u.threshold(score, everything)
    pin_site_tables(combined, table, score)
    row_unit = u.rows_of(c.unit)
    out: dict[str, Any] = {}
    for ward in np.unique(c.unit):
        rows = row_unit == ward
        p, m = float(septic[c.unit == ward].mean()), float(score[rows].mean())
        cells = {"prevalence": round(p, 4), "mean_risk": round(m, 5)}
        for rule, site in (("shipped", Site()), ("site", Site(p)), ("site-risk", Site(p, None, m))):
            t = choose_threshold(combined, site).threshold
            cells[rule] = round(u.utility(score[rows], rows, t), 4)
        cells["set_a_best"] = round(u.utility(score[rows], rows, set_a_best), 4)
        cells["hindsight"] = round(u.best(score[rows], rows)[1], 4)
        out[f"unit{int(ward)}" if ward else "no_unit"] = cells
    return out


def paired_bootstrap(
    u: shifts.Utility,
    score: np.ndarray,
    rows: np.ndarray,
    thr_a: float | np.ndarray,
    thr_b: float | np.ndarray,
    n: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Utility at ``thr_b`` minus at ``thr_a`` on the same scores, 95 % interval over resampled stays."""
    stay = u.stay_of_row[rows]
    gain = (u.u1 - u.u0)[rows]
    stays, inv = np.unique(stay, return_inverse=True)
    ga = np.bincount(inv, np.where(score >= thr_a, gain, 0.0), len(stays))
    gb = np.bincount(inv, np.where(score >= thr_b, gain, 0.0), len(stays))
    best = u.best_gain[stays]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(stays), (n, len(stays)))
    diff = (gb[draws].sum(1) - ga[draws].sum(1)) / best[draws].sum(1)
    lo, hi = np.quantile(diff, [0.025, 0.975])
    return {
        "diff": round(float((gb.sum() - ga.sum()) / best.sum()), 4),
        "lo": round(float(lo), 4),
        "hi": round(float(hi), 4),
    }


def against_best(
    u: shifts.Utility, pred: shifts.ShiftPredictions, fold: np.ndarray, unit: np.ndarray, rule: Rule
) -> dict[str, Any]:
    """Paired bootstrap of ``rule`` against ``best`` on the same predictions: the unit shifts and the
    CV folds (each fold's two thresholds from the other folds)."""
    row_fold, row_unit = u.rows_of(fold), u.rows_of(unit)
    out: dict[str, Any] = {}
    for key, train, test, s_train, s_test in _unit_shifts(pred, row_unit):
        out[key] = paired_bootstrap(u, s_test, test, best_rule(u, s_train, train), rule(u, s_train, train))
    t_best, t_rule = np.zeros(len(row_fold)), np.zeros(len(row_fold))
    for f in np.unique(row_fold):
        test = row_fold == f
        t_best[test] = best_rule(u, pred.oof[0][~test], ~test)
        t_rule[test] = rule(u, pred.oof[0][~test], ~test)
    out["cv"] = paired_bootstrap(u, pred.oof[0], np.ones(len(row_fold), bool), t_best, t_rule)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pred", action="append", default=[], help="<config>[+<config>@mean]-s<seed> (shiftpred)")
    ap.add_argument("--rule", action="append", default=[])
    ap.add_argument("--bootstrap", action="store_true", help="each rule minus best, paired over stays")
    ap.add_argument("--site-table", type=str, help="an OOF .npz (key combined): thresholds by site prevalence")
    ap.add_argument("--record", type=Path, help="with --site-table: store the table in this metrics.json")
    ap.add_argument("--manifest", type=Path, help="with --site-table: pin the table and share curve in this manifest")
    ap.add_argument("--wards", action="store_true", help="with --site-table: set A's units as wards of one site")
    ap.add_argument(
        "--prevalence-error",
        type=float,
        default=1.0,
        help="site rules: the test unit states this multiple of its true septic-stay prevalence",
    )
    ap.add_argument(
        "--assume-training-prevalence",
        action="store_true",
        help="site rules: the test unit states the training unit's prevalence (it knows only its mean risk)",
    )
    ap.add_argument("--out", default=str(data.CACHE_DIR / "threshold-rules.jsonl"))
    args = ap.parse_args(argv)
    c = data.load_cohort()
    assert c.unit is not None
    y, w = labels.utility_targets(c.labels, c.lengths)
    if args.site_table:
        oof = np.load(args.site_table)
        score = oof["combined"]
        if "lengths" in oof.files and not np.array_equal(oof["lengths"], c.lengths):
            # a bundle trained on each stay's hours from its first measurement (models.hour_zero, 2.7)
            c = data.from_first_measurement(c)[0]
            y, w = labels.utility_targets(c.labels, c.lengths)
            if not np.array_equal(oof["lengths"], c.lengths):
                raise SystemExit(
                    f"{args.site_table}: its stays' hours are set A's neither from the first row nor from the "
                    "first measurement: give the out-of-fold file of a training run on set A"
                )
        table = by_site_prevalence(shifts.Utility(c.labels, c.lengths), score, np.ones(len(score), bool), PREVALENCES)
        print(json.dumps(table))
        if args.wards:
            rec = {"site_table": args.site_table, "wards": ward_figures(c, score, table)}
            with open(args.out, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(json.dumps(rec["wards"]))
        if args.record:  # the card reads it from the bundle's metrics
            metrics = json.loads(args.record.read_text())
            metrics["combined"]["threshold_by_site_prevalence"] = table
            args.record.write_text(json.dumps(metrics, indent=2) + "\n")
        if args.manifest:  # the worker and vigil predict choose a site's threshold from it
            manifest = json.loads(args.manifest.read_text())
            pin_site_tables(manifest["models"]["combined"], table, score)
            args.manifest.write_text(json.dumps(manifest, indent=2) + "\n")
        return 0
    for name in args.pred:
        config, seed = name.rsplit("-s", 1)
        how = config.rsplit("@", 1)[1] if "@" in config else ""  # a+b@mean, a+b@stack: two models combined
        parts = config.rsplit("@", 1)[0].split("+") if how else [config]
        pred = shifts.ShiftPredictions.stack(
            [shifts.ShiftPredictions.load(data.CACHE_DIR / "shiftpred" / f"{p}-s{seed}.npz") for p in parts]
        )
        fold = data.grouped_folds(c, 4, int(seed))
        combiner = {"": shifts.single, "mean": _mean_logit, "stack": _stacker}[how]
        for rule in args.rule or ["best"]:
            if args.bootstrap:
                res = against_best(shifts.Utility(c.labels, c.lengths), pred, fold, c.unit, parse(rule))
                with open(args.out, "a") as fh:
                    fh.write(json.dumps({"pred": name, "rule": rule, "minus_best": res}) + "\n")
                print(name, rule, json.dumps(res), flush=True)
                continue
            base = rule.replace("-risk", "")  # site-risk, served-risk<c>: the mean risk known too
            if base == "site" or base.startswith("served"):  # served<ceiling>: the worker's path
                ceiling = (float(base[6:]) if base[6:] else 1.0) if base.startswith("served") else None
                res = site_prevalence_figures(
                    shifts.Utility(c.labels, c.lengths),
                    pred,
                    c.unit,
                    combiner,
                    (y, w),
                    ceiling,
                    mean_risk=base != rule,
                    prevalence_error=args.prevalence_error,
                    assume_training_prevalence=args.assume_training_prevalence,
                )
                rule = site_rule_name(rule, args.prevalence_error, args.assume_training_prevalence)
            elif rule == "share":
                res = share_figures(shifts.Utility(c.labels, c.lengths), pred, fold, c.unit)
            else:
                u = with_rule(parse(rule))(c.labels, c.lengths)
                res = shifts.figures(u, pred, fold, c.unit, y, w, combiner)
            rec = {"pred": name, "rule": rule, **res}
            with open(args.out, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            routine = [k for k in res if "+labs_every" in k and not k.endswith("_seeds")]  # protocol 6
            keys = [k for k in (*SHIFTS, *COMPOUND, *routine, "in_unit1", "in_unit2") if k in res]
            cells = " ".join(f"{k} {res[k]['utility']:.3f}" for k in keys)
            worst = min(res[k]["utility"] for k in keys if not k.startswith("in_unit"))
            print(f"{name:24s} {rule:9s} {cells} | worst utility {worst:.3f}", flush=True)
    return 0


def _stacker(scores: np.ndarray, y: np.ndarray, w: np.ndarray) -> shifts.Scorer:
    from vigil.models.train import stacking  # scikit-learn (isotonic), as the bundle's combined score

    return stacking.combiner(scores, y, w)  # type: ignore[no-any-return]


def _mean_logit(scores: np.ndarray, y: np.ndarray, w: np.ndarray) -> shifts.Scorer:
    return lambda p: np.mean(_to_logit_rows(p), axis=0)


def _to_logit_rows(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


if __name__ == "__main__":
    raise SystemExit(main())
