"""Threshold rules of the shift study (models.train.threshold_rules): each reads training-side rows only."""

from __future__ import annotations

import numpy as np
from synthetic import septic_labels

from vigil.models.train import threshold_rules as tr
from vigil.models.train.shifts import ShiftPredictions, Utility


def _cohort(seed: int = 0, n: int = 120) -> tuple[Utility, np.ndarray]:
    rng = np.random.default_rng(seed)
    lab, lengths = septic_labels(rng, n)
    return Utility(lab, lengths), lab + 0.8 * rng.random(len(lab))


def _two_units(u: Utility, score: np.ndarray) -> tuple[np.ndarray, ShiftPredictions]:
    """Stays alternately in unit 1 and 2, each unit's model scoring both as ``score`` (no shift of the scores)."""
    unit = np.where(np.arange(len(u.lengths)) % 2 == 0, 1, 2)
    row_unit = u.rows_of(unit)
    other = {"unit1->unit2": score[row_unit == 2][None], "unit2->unit1": score[row_unit == 1][None]}
    inner = {1: score[row_unit == 1][None], 2: score[row_unit == 2][None]}
    return unit, ShiftPredictions(score[None], {}, other, inner)


def test_prevalence_maximin_with_ratio_one_is_the_best_threshold() -> None:
    u, score = _cohort()
    rows = np.ones(len(score), bool)
    assert tr.prevalence_maximin(1.0)(u, score, rows) == tr.best_rule(u, score, rows)
    assert tr.calibration_maximin(0.0)(u, score, rows) == tr.best_rule(u, score, rows)


def test_hedging_against_fewer_septic_stays_never_lowers_the_threshold() -> None:
    u, score = _cohort(1)
    rows = np.ones(len(score), bool)
    assert tr.prevalence_maximin(2.0)(u, score, rows) >= tr.best_rule(u, score, rows)


def test_rules_read_only_the_labels_of_their_rows() -> None:
    u, score = _cohort(2)
    rows = u.rows_of(np.arange(len(u.lengths)) < 60)
    relabelled = u.labels.copy()
    relabelled[~rows] = 1 - relabelled[~rows]  # the other stays' outcomes must not move the threshold
    v = Utility(relabelled, u.lengths)
    for rule in (tr.best_rule, tr.prevalence_maximin(1.5), tr.calibration_maximin(0.5)):
        assert rule(u, score[rows], rows) == rule(v, score[rows], rows)


def test_paired_bootstrap_of_a_threshold_against_itself_is_zero() -> None:
    u, score = _cohort(3)
    rows = np.ones(len(score), bool)
    t = tr.best_rule(u, score, rows)
    assert tr.paired_bootstrap(u, score, rows, t, t, n=50) == {"diff": 0.0, "lo": 0.0, "hi": 0.0}


def test_site_prevalence_table_returns_the_best_threshold_at_the_training_prevalence() -> None:
    u, score = _cohort(4)
    rows = np.ones(len(score), bool)
    p0 = float((u.best_gain > 0).mean())
    low, same, high = tr.by_site_prevalence(u, score, rows, (p0 / 3, p0, min(0.9, 2 * p0)))
    assert same["threshold"] == round(tr.best_rule(u, score, rows), 9)
    assert low["threshold"] >= same["threshold"] >= high["threshold"]  # fewer septic stays: fewer alerts


def test_the_served_site_threshold_follows_the_exact_rule_and_its_ceiling() -> None:
    u, score = _cohort(5, 200)
    unit, pred = _two_units(u, score)
    exact = tr.site_prevalence_figures(u, pred, unit)
    grid = tuple(np.round(np.arange(0.1, 0.61, 0.02), 2))  # the synthetic units: about a third septic
    served = tr.site_prevalence_figures(u, pred, unit, served=1.0, prevalences=grid)
    capped = tr.site_prevalence_figures(u, pred, unit, served=0.05, prevalences=grid)
    # read with the test unit's mean risk: the same unit shifts, and thinned labs where given; a
    # "thinning" that changed no score leaves the mean risk, and so the threshold, where it was
    same = ShiftPredictions(pred.oof, {1: score[None]}, pred.other_unit, pred.in_unit)
    with_risk = tr.site_prevalence_figures(u, same, unit, mean_risk=True)
    assert set(with_risk) == {"unit1->unit2", "unit2->unit1", "labs_thinned_pooled"}
    thinned = with_risk["labs_thinned_pooled"]["1"]
    assert thinned["mean_risk_ratio"] == 1.0 and thinned["mean_risk"] == thinned["shipped"]
    for key in ("unit1->unit2", "unit2->unit1"):
        assert abs(served[key]["threshold"] - exact[key]["threshold"]) < 0.1
        assert capped[key]["threshold"] >= served[key]["threshold"]
        assert capped[key]["alert_share"] <= 0.12  # 5 % of the training unit's hours; the other unit's share differs


def test_the_site_rules_score_the_other_unit_with_its_labs_thinned_too() -> None:
    u, score = _cohort(6, 200)
    unit = np.where(np.arange(200) % 2 == 0, 1, 2)
    row_unit = u.rows_of(unit)
    other = {"unit1->unit2": score[row_unit == 2][None], "unit2->unit1": score[row_unit == 1][None]}
    inner = {1: score[row_unit == 1][None], 2: score[row_unit == 2][None]}
    # unit 2's stays with labs thinned score higher everywhere (a model that reads missing labs as risk)
    raised = {
        "unit1->unit2": {1: np.minimum(other["unit1->unit2"] * 1.5, 1.0)},
        "unit2->unit1": {1: other["unit2->unit1"]},
    }
    pred = ShiftPredictions(score[None], {}, other, inner, {}, raised)
    site = tr.site_prevalence_figures(u, pred, unit)
    with_risk = tr.site_prevalence_figures(u, pred, unit, mean_risk=True)
    for rule in (site, with_risk):  # an unchanged copy scores as the unit shift itself
        unchanged = rule["unit2->unit1+labs_thinned"]
        assert unchanged["seeds"] == [1] and unchanged["utility"] == rule["unit2->unit1"]["utility"]
    # prevalence alone: the same threshold, more hours flagged; with the mean risk: the threshold rises
    key = "unit1->unit2+labs_thinned"
    assert site[key]["threshold"] == site["unit1->unit2"]["threshold"]
    assert site[key]["alert_share"] > site["unit1->unit2"]["alert_share"]
    assert with_risk[key]["threshold"] > with_risk["unit1->unit2"]["threshold"]
    # protocol 6: the same unit's labs drawn by routine are scored beside the thinned copy, kept apart
    pred.other_unit_sched = {k: {24: v[1]} for k, v in raised.items()}
    routine = tr.site_prevalence_figures(u, pred, unit, mean_risk=True)
    assert routine[key] == with_risk[key]  # the thinned copy is unchanged by the routine one
    scheduled = routine["unit1->unit2+labs_every24h"]
    assert (scheduled["threshold"], scheduled["utility"]) == (with_risk[key]["threshold"], with_risk[key]["utility"])
    assert routine["unit2->unit1+labs_every24h"]["utility"] == routine["unit2->unit1"]["utility"]


def test_a_site_that_overstates_its_prevalence_gets_a_lower_threshold() -> None:
    from vigil.models.site_threshold import odds

    u, score = _cohort(7, 200)
    unit, pred = _two_units(u, score)
    true = tr.site_prevalence_figures(u, pred, unit)
    assert tr.site_prevalence_figures(u, pred, unit, prevalence_error=1.0) == true
    over, under = (tr.site_prevalence_figures(u, pred, unit, prevalence_error=f) for f in (1.5, 0.5))
    septic = u.best_gain > 0
    for a, key in ((1, "unit1->unit2"), (2, "unit2->unit1")):
        pa, pb = septic[unit == a].mean(), septic[unit == 3 - a].mean()
        assert over[key]["odds_ratio"] == round(odds(1.5 * pb) / odds(pa), 3)  # the stated prevalence, not the true
        assert under[key]["threshold"] >= true[key]["threshold"] >= over[key]["threshold"]
    assert any(over[k]["threshold"] < true[k]["threshold"] for k in ("unit1->unit2", "unit2->unit1"))


def test_a_site_read_at_the_training_prevalence_corrects_only_its_mean_risk() -> None:
    from vigil.models.site_threshold import model_shift

    u, score = _cohort(8, 200)
    unit, pred = _two_units(u, score)
    assumed = tr.site_prevalence_figures(u, pred, unit, mean_risk=True, assume_training_prevalence=True)
    row_unit = u.rows_of(unit)
    for a, key in ((1, "unit1->unit2"), (2, "unit2->unit1")):
        s_train, s_test = score[row_unit == a], score[row_unit == 3 - a]
        # the prevalences' odds ratio is 1: all that is left is the model's own move, undone
        expected = 1.0 / model_shift(float(s_test.mean()), float(s_train.mean()))
        assert assumed[key]["odds_ratio"] == round(expected, 3)
        assert assumed[key]["odds_ratio"] != 1.0


def test_wards_are_scored_at_the_bundles_default_rule_and_at_set_as_best() -> None:
    from types import SimpleNamespace

    u, _ = _cohort(6, 200)
    score = 0.3 * u.labels + np.random.default_rng(6).random(len(u.labels))  # overlapping: the rules differ
    cohort = SimpleNamespace(labels=u.labels, lengths=u.lengths, unit=np.arange(200) % 3)  # unit 0: none
    rows = np.ones(len(score), bool)
    table = tr.by_site_prevalence(u, score, rows, tuple(np.round(np.arange(0.1, 0.61, 0.05), 2)))
    best = tr.ward_figures(cohort, score, table, default="best")  # type: ignore[arg-type]
    hedged = tr.ward_figures(cohort, score, table, default="prev3")  # type: ignore[arg-type]
    assert set(best) == {"no_unit", "unit1", "unit2"}
    for ward, cells in best.items():
        assert cells["shipped"] == cells["set_a_best"] == hedged[ward]["set_a_best"]
    # the hedged default is a higher threshold: some ward scores differently at it
    assert tr.prevalence_maximin(3.0)(u, score, rows) > tr.best_rule(u, score, rows)
    assert any(hedged[w]["shipped"] != best[w]["shipped"] for w in best)
    assert tr.BUNDLE_RULE == "prev1.5" and tr.parse(tr.BUNDLE_RULE)(u, score, rows) >= tr.best_rule(u, score, rows)
