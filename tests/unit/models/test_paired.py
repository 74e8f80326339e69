"""Two recipes compared on the same stays (models.train.paired): the point figures are the screen's."""

from __future__ import annotations

import functools
import json

import numpy as np
from synthetic import septic_labels

from vigil.models.train import paired
from vigil.models.train.labels import utility_targets
from vigil.models.train.shifts import ShiftPredictions, Utility, figures
from vigil.models.train.threshold_rules import site_prevalence_figures
from vigil.models.utility import auroc_auprc


def _pred(
    u: Utility, unit: np.ndarray, score: np.ndarray, rng: np.random.Generator, scale: float = 1.0
) -> ShiftPredictions:
    row_unit = u.rows_of(unit)

    def noisy() -> np.ndarray:
        return (scale * (score + rng.random(len(score))))[None]

    other = {"unit1->unit2": noisy()[:, row_unit == 2], "unit2->unit1": noisy()[:, row_unit == 1]}
    return ShiftPredictions(
        noisy(),
        {1: noisy(), 2: noisy()},
        other,
        {1: noisy()[:, row_unit == 1], 2: noisy()[:, row_unit == 2]},
        oof_sched={24: noisy()},
        other_unit_sched={k: {24: noisy()[:, row_unit == int(k[-1])]} for k in other},
    )


def test_weighted_ranks_give_the_auroc_and_count_repeated_stays() -> None:
    rng = np.random.default_rng(0)
    score, label = np.round(rng.random(500), 2), rng.random(500) < 0.2  # ties included
    ranks = paired._Ranks(score, label)
    assert abs(ranks.auroc(np.ones(500)) - auroc_auprc(label, score)[0]) < 1e-9
    twice = np.r_[score, score[:100]], np.r_[label, label[:100]]
    weight = np.r_[np.full(100, 2.0), np.ones(400)]
    assert abs(ranks.auroc(weight) - auroc_auprc(twice[1], twice[0])[0]) < 1e-9


def test_paired_differences_are_the_screens_and_vanish_for_the_same_recipe(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    labels, lengths = septic_labels(rng, 120)
    fold, unit = np.arange(120) % 4, np.where(np.arange(120) % 2 == 0, 1, 2)
    u, (y, w) = Utility(labels, lengths), utility_targets(labels, lengths)
    a = _pred(u, unit, y * 0.5, rng)
    b = _pred(u, unit, y * 2.0, rng)  # ranks better everywhere
    fa, fb = figures(u, a, fold, unit, y, w), figures(u, b, fold, unit, y, w)
    out = paired.compare(u, a, b, fold, unit, n=60)
    routine = {"unit1->unit2+labs_every24h", "unit2->unit1+labs_every24h"}
    assert set(out) == {"cv", "labs_thinned", "labs_every24h", "unit1->unit2", "unit2->unit1", *routine, "worst"}
    worst = out.pop("worst")  # over every shift but the randomly thinned labs, the minimum per recipe
    assert worst["over"] == [s for s in out if s != "labs_thinned"]
    assert worst["a_utility"] == round(min(fa[s]["utility"] for s in worst["over"]), 4)
    assert worst["b_auroc"] == round(min(fb[s]["auroc"] for s in worst["over"]), 4)
    assert worst["utility_lo"] <= worst["utility"] <= worst["utility_hi"]
    for shift, r in out.items():
        assert abs(r["auroc"] - (fb[shift]["auroc"] - fa[shift]["auroc"])) < 2e-4, shift
        assert abs(r["utility"] - (fb[shift]["utility"] - fa[shift]["utility"])) < 2e-4, shift
        assert 0 < r["auroc_lo"] <= r["auroc"] <= r["auroc_hi"]
    # a recipe taught on labs once a day is judged without the scheduled shifts instead
    assert paired.taught_on("full~psmooth~mono~augdaily") == ("labs_every",)
    assert paired.taught_on("full~psmooth~mono~aug50") == ("labs_thinned",)
    daily = paired.compare(u, a, b, fold, unit, n=10, taught=paired.taught_on("full~augdaily"))["worst"]
    assert daily["over"] == [s for s in out if "labs_every" not in s]
    # taught on both copies (~augmix<K>): judged on the shifts neither teaches
    assert paired.taught_on("full~psmooth~mono~augmix10") == ("labs_thinned", "labs_every")
    mix = paired.compare(u, a, b, fold, unit, n=10, taught=paired.taught_on("full~augmix10"))["worst"]
    assert mix["over"] == [s for s in out if "labs_every" not in s and "labs_thinned" not in s]
    assert "cv" in mix["over"] and len(mix["over"]) < len(daily["over"])
    same = paired.compare(u, a, a, fold, unit, n=20)
    assert same["worst"]["a_utility"] == same["worst"]["b_utility"]
    assert all(v == 0 for r in same.values() for k, v in r.items() if k in paired._difference(np.zeros((2, 4))))
    # recorded for the card: a rerun of the same pair and seed replaces its entry
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"combined": {}}))
    summary = {"a": "x", "b": "y", "draws": 60, "seeds": {"1": out}}
    paired.record(path, summary)
    paired.record(path, summary)
    paired.record(path, {**summary, "seeds": {"2": same}})
    entries = json.loads(path.read_text())["paired"]
    assert [(e["seed"], e["shifts"]["cv"]["auroc"]) for e in entries] == [(1, out["cv"]["auroc"]), (2, 0.0)]


def test_the_served_site_rule_moves_only_the_unit_shifts_thresholds() -> None:
    rng = np.random.default_rng(2)
    labels, lengths = septic_labels(rng, 160)
    u, (y, _) = Utility(labels, lengths), utility_targets(labels, lengths)
    fold = np.arange(160) % 4
    unit = np.where((u.best_gain > 0) ^ (fold == 0), 1, 2)  # unit 1 mostly septic stays, unit 2 mostly not
    a, b = _pred(u, unit, y * 0.5, rng, 1 / 1.5), _pred(u, unit, y * 2.0, rng, 1 / 3)  # risks in [0, 1]
    best = paired.compare(u, a, b, fold, unit, n=20)
    grid = tuple(np.round(np.arange(0.02, 0.99, 0.02), 2))  # the synthetic units' prevalences: 15 % and 65 %
    site = functools.partial(paired.site_rule_thresholds, prevalences=grid)
    served = paired.compare(u, a, b, fold, unit, n=20, site_a=site, site_b=site)
    site_a = site_prevalence_figures(u, a, unit, served=1.0, prevalences=grid, mean_risk=True)
    site_b = site_prevalence_figures(u, b, unit, served=1.0, prevalences=grid, mean_risk=True)
    for shift in ("unit1->unit2", "unit2->unit1", "unit1->unit2+labs_every24h"):
        assert abs(served[shift]["utility"] - (site_b[shift]["utility"] - site_a[shift]["utility"])) < 2e-4, shift
        assert served[shift]["auroc"] == best[shift]["auroc"]  # the ranking does not depend on the rule
    assert any(served[k]["utility"] != best[k]["utility"] for k in ("unit1->unit2", "unit2->unit1"))
    # two rules on the same predictions: the served site threshold minus the shipped one
    rules = paired.compare(u, a, a, fold, unit, n=20, site_b=site)
    reverse = paired.compare(u, a, a, fold, unit, n=20, site_a=site)  # served minus best: the opposite sign
    assert all(reverse[k]["utility"] == -rules[k]["utility"] for k in ("unit1->unit2", "unit2->unit1"))
    shipped = figures(u, a, fold, unit, y, utility_targets(labels, lengths)[1])
    for shift in ("unit1->unit2", "unit2->unit1"):
        assert abs(rules[shift]["utility"] - (site_a[shift]["utility"] - shipped[shift]["utility"])) < 2e-4
        assert rules[shift]["auroc"] == 0
    assert any(rules[k]["utility"] != 0 for k in ("unit1->unit2", "unit2->unit1"))
    for shift in ("cv", "labs_thinned", "labs_every24h"):
        assert served[shift] == best[shift]


def test_a_default_threshold_rule_is_the_screens_figures_under_that_rule() -> None:
    from vigil.models.train.threshold_rules import parse, with_rule

    rng = np.random.default_rng(3)
    labels, lengths = septic_labels(rng, 160)
    u, (y, w) = Utility(labels, lengths), utility_targets(labels, lengths)
    fold, unit = np.arange(160) % 4, np.where(np.arange(160) % 2 == 0, 1, 2)
    a = _pred(u, unit, y * 0.3, rng)  # overlapping scores: the rules' thresholds differ
    # prev3 wherever the training side picks (CV folds and unit shifts) against the shipped best
    rules = paired.compare(u, a, a, fold, unit, n=20, choose_b=parse("prev3"))
    shipped = figures(u, a, fold, unit, y, w)
    ruled = figures(with_rule(parse("prev3"))(labels, lengths), a, fold, unit, y, w)
    for shift in ("cv", "labs_every24h", "unit1->unit2", "unit2->unit1", "unit1->unit2+labs_every24h"):
        assert abs(rules[shift]["utility"] - (ruled[shift]["utility"] - shipped[shift]["utility"])) < 2e-4, shift
        assert rules[shift]["auroc"] == 0
    assert any(rules[k]["utility"] != 0 for k in ("cv", "unit1->unit2", "unit2->unit1"))
    assert paired._rule("prev1.5")[0] is None and paired._rule("served-risk")[0] is paired.site_rule_thresholds
    for bad in ("prevx", "median"):
        try:
            paired._rule(bad)
        except SystemExit as e:
            assert "unknown rule" in str(e)
        else:
            raise AssertionError(bad)


def test_the_worst_case_interval_is_a_bootstrap_of_one_resample_of_stays() -> None:
    """Every shift is weighed by the same resample of the cohort's stays in each draw, so the minimum
    over shifts taken per draw is the worst case of that resample: over two shifts whose scores are the
    same, the worst case's interval is that shift's own (draws made anew per shift would give a lower,
    narrower one: the minimum of two independent draws)."""
    rng = np.random.default_rng(3)
    labels, lengths = septic_labels(rng, 120)
    fold, unit = np.arange(120) % 4, np.where(np.arange(120) % 2 == 0, 1, 2)
    u, (y, _) = Utility(labels, lengths), utility_targets(labels, lengths)
    a, b = _pred(u, unit, y * 0.5, rng), _pred(u, unit, y * 2.0, rng)
    for pred in (a, b):
        pred.oof_sched[24] = pred.oof.copy()  # labs once a day scored exactly as recorded
    out = paired.compare(u, a, b, fold, unit, n=60, taught=("labs_thinned", "unit"))
    assert out["worst"]["over"] == ["cv", "labs_every24h"]
    assert out["cv"] == out["labs_every24h"]
    assert {k: v for k, v in out["worst"].items() if k in out["cv"]} == out["cv"]


def test_stay_draws_resample_the_whole_cohort_once_per_draw() -> None:
    draws = paired.stay_draws(50, 30, seed=4)
    assert draws.shape == (30, 50) and (draws.sum(1) == 50).all()
    assert np.array_equal(draws, paired.stay_draws(50, 30, seed=4))
    assert len({row.tobytes() for row in draws}) == 30
