"""The shift tests choose every threshold on the training side of the shift they report."""

from __future__ import annotations

import numpy as np
from synthetic import septic_labels

from vigil.models.train import stacking
from vigil.models.train.labels import utility_targets
from vigil.models.train.shifts import HeldOut, ShiftPredictions, Utility, figures


def _cohort(rng: np.random.Generator, n: int = 80) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    labels, lengths = septic_labels(rng, n)
    fold, unit = np.arange(n) % 4, np.where(np.arange(n) % 2 == 0, 1, 2)
    return labels, lengths, fold, unit


def _predictions(u: Utility, unit: np.ndarray, score: np.ndarray) -> ShiftPredictions:
    row_unit = u.rows_of(unit)
    return ShiftPredictions(
        score[None],
        {1: score[None], 2: score[None]},
        {"unit1->unit2": score[row_unit == 2][None], "unit2->unit1": score[row_unit == 1][None]},
        {1: score[row_unit == 1][None], 2: score[row_unit == 2][None]},
    )


def test_an_oracle_scores_near_the_best_and_noise_near_nothing() -> None:
    rng = np.random.default_rng(0)
    labels, lengths, fold, unit = _cohort(rng)
    u, (y, w) = Utility(labels, lengths), utility_targets(labels, lengths)
    oracle = figures(u, _predictions(u, unit, y + 0.01 * rng.random(len(y))), fold, unit, y, w)
    noise = figures(u, _predictions(u, unit, rng.random(len(y))), fold, unit, y, w)
    assert oracle["worst"]["auroc"] > 0.9 and oracle["worst"]["utility"] > 0.8
    assert abs(noise["cv"]["auroc"] - 0.5) < 0.1 and noise["worst"]["utility"] < oracle["worst"]["utility"] - 0.2


def test_unit_thresholds_come_from_the_training_unit_only() -> None:
    rng = np.random.default_rng(1)
    labels, lengths, fold, unit = _cohort(rng)
    u, (y, w) = Utility(labels, lengths), utility_targets(labels, lengths)
    pred = _predictions(u, unit, y + rng.random(len(y)))
    base = figures(u, pred, fold, unit, y, w)
    moved_test_side = _predictions(u, unit, y + rng.random(len(y)))
    moved_test_side.other_unit, moved_test_side.in_unit[1] = pred.other_unit, pred.in_unit[1]
    moved_test_side.in_unit[2] = pred.in_unit[2] * 0.2  # unit 2's own inner scores: not unit1->unit2's business
    assert figures(u, moved_test_side, fold, unit, y, w)["unit1->unit2"] == base["unit1->unit2"]
    moved_train_side = _predictions(u, unit, y + rng.random(len(y)))
    moved_train_side.other_unit, moved_train_side.in_unit[2] = pred.other_unit, pred.in_unit[2]
    moved_train_side.in_unit[1] = pred.in_unit[1] * 0.2  # unit 1's inner scores set unit1->unit2's threshold
    assert (
        figures(u, moved_train_side, fold, unit, y, w)["unit1->unit2"]["threshold"] != base["unit1->unit2"]["threshold"]
    )


def test_a_fold_without_septic_stays_is_left_out_of_the_utility_mean() -> None:
    rng = np.random.default_rng(2)
    labels, lengths, fold, unit = _cohort(rng)
    u, (y, w) = Utility(labels, lengths), utility_targets(labels, lengths)
    septic = np.array([labels[a:b].any() for a, b in zip(u.offsets[:-1], u.offsets[1:], strict=True)])
    fold = np.where(septic, fold % 3, 3)  # fold 3: non-septic stays only (a small smoke run's luck)
    no_septic = u.rows_of(fold == 3)
    assert np.isnan(u.utility(rng.random(no_septic.sum()), no_septic, 0.5))
    out = figures(u, _predictions(u, unit, y + rng.random(len(y))), fold, unit, y, w)
    assert np.isfinite(out["cv"]["utility"]) and np.isfinite(out["worst"]["utility"])


def test_thinned_vitals_join_the_worst_case_and_survive_save_and_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    labels, lengths, fold, unit = _cohort(rng)
    u, (y, w) = Utility(labels, lengths), utility_targets(labels, lengths)
    score = y + rng.random(len(y))
    pred = _predictions(u, unit, score)
    four = figures(u, pred, fold, unit, y, w)
    assert four["protocol"] == 2 and "vitals_thinned" not in four
    # the fold models lose their ranking when vitals are charted half as often: the worst case says so
    pred.oof_vitals = {1: rng.random(len(y))[None], 2: rng.random(len(y))[None]}
    five = figures(u, pred, fold, unit, y, w)
    assert five["protocol"] == 3 and five["vitals_thinned"]["seeds"] == [1, 2]
    assert set(five["vitals_thinned_seeds"]) == {"1", "2"}
    assert five["worst"]["auroc"] == five["vitals_thinned"]["auroc"] < four["worst"]["auroc"]
    for shift in ("cv", "labs_thinned", "unit1->unit2", "unit2->unit1"):
        assert five[shift] == four[shift]
    pred.save(tmp_path / "p.npz")
    back = ShiftPredictions.load(tmp_path / "p.npz")
    assert sorted(back.oof_vitals) == [1, 2] and sorted(back.oof_thin) == [1, 2]
    np.testing.assert_array_equal(back.oof_vitals[2], pred.oof_vitals[2])
    both = ShiftPredictions.stack([back, _predictions(u, unit, score)])  # one part without vitals
    assert both.oof.shape[0] == 2 and both.oof_vitals == {}


def test_another_unit_with_thinned_labs_keeps_the_units_threshold_and_joins_the_worst_case(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(4)
    labels, lengths, fold, unit = _cohort(rng)
    u, (y, w) = Utility(labels, lengths), utility_targets(labels, lengths)
    row_unit = u.rows_of(unit)
    pred = _predictions(u, unit, y + rng.random(len(y)))
    pred.oof_vitals = {1: pred.oof, 2: pred.oof}
    before = figures(u, pred, fold, unit, y, w)
    # unit 1's model loses its ranking on unit 2's stays when their labs are thinned
    pred.other_unit_thin = {
        "unit1->unit2": {s: rng.random((1, int((row_unit == 2).sum()))) for s in (1, 2)},
        "unit2->unit1": {s: pred.other_unit["unit2->unit1"] for s in (1, 2)},
    }
    after = figures(u, pred, fold, unit, y, w)
    assert before["protocol"] == 3 and after["protocol"] == 4
    compound = after["unit1->unit2+labs_thinned"]
    assert compound["seeds"] == [1, 2] and set(after["unit1->unit2+labs_thinned_seeds"]) == {"1", "2"}
    assert compound["threshold"] == after["unit1->unit2"]["threshold"]  # chosen on unit 1's unthinned folds
    assert after["worst"]["auroc"] == compound["auroc"] < before["worst"]["auroc"]
    # thinning that changes nothing scores as the unit shift itself
    assert {k: v for k, v in after["unit2->unit1+labs_thinned"].items() if k != "seeds"} == after["unit2->unit1"]
    for shift in ("cv", "labs_thinned", "vitals_thinned", "unit1->unit2", "unit2->unit1"):
        assert after[shift] == before[shift]
    pred.save(tmp_path / "p.npz")
    back = ShiftPredictions.load(tmp_path / "p.npz")
    assert sorted(back.other_unit_thin) == ["unit1->unit2", "unit2->unit1"]
    np.testing.assert_array_equal(back.other_unit_thin["unit1->unit2"][2], pred.other_unit_thin["unit1->unit2"][2])
    assert ShiftPredictions.stack([back, back]).other_unit_thin["unit2->unit1"][1].shape[0] == 2
    assert ShiftPredictions.stack([back, _predictions(u, unit, y)]).other_unit_thin == {}  # one part without


def _protocol4(
    rng: np.random.Generator,
) -> tuple[Utility, np.ndarray, np.ndarray, np.ndarray, np.ndarray, ShiftPredictions]:
    """A cohort and predictions carrying every shift up to protocol 4 (copies that change nothing)."""
    labels, lengths, fold, unit = _cohort(rng)
    u, (y, w) = Utility(labels, lengths), utility_targets(labels, lengths)
    pred = _predictions(u, unit, y + rng.random(len(y)))
    pred.oof_vitals = {1: pred.oof, 2: pred.oof}
    pred.other_unit_thin = {k: {s: v for s in (1, 2)} for k, v in pred.other_unit.items()}
    return u, y, w, fold, unit, pred


def test_labs_drawn_once_a_day_are_scored_at_each_folds_threshold_and_join_the_worst_case(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(5)
    u, y, w, fold, unit, pred = _protocol4(rng)
    before = figures(u, pred, fold, unit, y, w)
    # a schedule that changes nothing scores as CV itself, fold thresholds included
    pred.oof_sched = {24: pred.oof}
    same = figures(u, pred, fold, unit, y, w)
    assert before["protocol"] == 4 and same["protocol"] == 5 and "labs_every24h" not in before
    assert same["labs_every24h"] == same["cv"] and same["worst"] == before["worst"]
    # the fold models lose their ranking when labs come once a day: the worst case says so
    pred.oof_sched = {24: rng.random((1, len(y)))}
    after = figures(u, pred, fold, unit, y, w)
    assert after["worst"]["auroc"] == after["labs_every24h"]["auroc"] < before["worst"]["auroc"]
    # a recipe taught on the schedule is judged without it too (``--teach-daily-labs``)
    assert after["worst_without_schedule"] == before["worst"] == before["worst_without_schedule"]
    assert after["labs_every24h"]["threshold"] == after["cv"]["threshold"]
    for shift in ("cv", "labs_thinned", "vitals_thinned", "unit1->unit2", "unit2->unit1+labs_thinned"):
        assert after[shift] == before[shift]
    pred.save(tmp_path / "p.npz")
    back = ShiftPredictions.load(tmp_path / "p.npz")
    assert sorted(back.oof_sched) == [24] and sorted(back.oof_thin) == [1, 2]
    np.testing.assert_array_equal(back.oof_sched[24], pred.oof_sched[24])
    assert ShiftPredictions.stack([back, back]).oof_sched[24].shape == (2, len(y))
    assert ShiftPredictions.stack([back, _predictions(u, unit, y)]).oof_sched == {}  # one part without


def test_another_unit_drawing_labs_by_routine_is_scored_at_the_training_units_threshold(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(6)
    u, y, w, fold, unit, pred = _protocol4(rng)
    pred.oof_sched = {24: pred.oof}
    before = figures(u, pred, fold, unit, y, w)
    # unit 1's model loses its ranking on unit 2's stays when their labs come once a day
    noise = rng.random((1, len(pred.other_unit["unit1->unit2"][0])))
    pred.other_unit_sched = {"unit1->unit2": {24: noise}, "unit2->unit1": {24: pred.other_unit["unit2->unit1"]}}
    after = figures(u, pred, fold, unit, y, w)
    assert before["protocol"] == 5 and after["protocol"] == 6
    routine = after["unit1->unit2+labs_every24h"]
    assert routine["threshold"] == after["unit1->unit2"]["threshold"]  # chosen on unit 1's folds as drawn
    assert after["worst"]["auroc"] == routine["auroc"] < before["worst"]["auroc"]
    assert after["worst_without_schedule"] == before["worst_without_schedule"]  # the compound with a schedule too
    assert after["unit2->unit1+labs_every24h"] == after["unit2->unit1"]  # a schedule that changes nothing
    for shift in ("cv", "labs_every24h", "unit1->unit2", "unit1->unit2+labs_thinned", "unit2->unit1+labs_thinned"):
        assert after[shift] == before[shift]
    pred.save(tmp_path / "p.npz")
    back = ShiftPredictions.load(tmp_path / "p.npz")
    np.testing.assert_array_equal(back.other_unit_sched["unit1->unit2"][24], noise)
    assert sorted(back.other_unit_thin["unit1->unit2"]) == [1, 2]  # the two kinds of copy kept apart
    assert ShiftPredictions.stack([back, back]).other_unit_sched["unit1->unit2"][24].shape[0] == 2
    assert ShiftPredictions.stack([back, _predictions(u, unit, y)]).other_unit_sched == {}  # one part without


def test_the_held_out_scores_are_each_shifts_own_not_a_fit_on_all_rows() -> None:
    rng = np.random.default_rng(7)
    u, y, w, fold, unit, pred = _protocol4(rng)
    routine = rng.random((1, len(pred.other_unit["unit1->unit2"][0])))
    pred.oof_sched = {24: rng.random((1, len(y)))}
    pred.other_unit_sched = {"unit1->unit2": {24: routine}, "unit2->unit1": {24: pred.other_unit["unit2->unit1"]}}
    held_out: HeldOut = {}
    out = figures(u, pred, fold, unit, y, w, held_out=held_out)
    assert out == figures(u, pred, fold, unit, y, w)  # the figures do not depend on keeping the scores
    assert set(held_out) == {
        "cv",
        "labs_every24h",
        "unit1->unit2",
        "unit2->unit1",
        "unit1->unit2+labs_every24h",
        "unit2->unit1+labs_every24h",
    }
    row_unit = u.rows_of(unit)
    rows, score = held_out["unit1->unit2+labs_every24h"]  # the scores of the other unit only, by its routine
    np.testing.assert_array_equal(rows, row_unit == 2)
    np.testing.assert_array_equal(score, routine[0])
    np.testing.assert_array_equal(held_out["unit2->unit1"][1], pred.other_unit["unit2->unit1"][0])
    np.testing.assert_array_equal(held_out["labs_every24h"][1], pred.oof_sched[24][0])
    # a combined score: each fold's rows at the stacker and calibration fitted on the other folds
    both = ShiftPredictions.stack([pred, pred])
    held_out = {}
    figures(u, both, fold, unit, y, w, stacking.trees_only_combiner, held_out)
    rows, score = held_out["cv"]
    row_fold = u.rows_of(fold)
    test = row_fold == 0
    fold0 = stacking.trees_only_combiner(both.oof[:, ~test], y[~test], w[~test])(both.oof[:, test])
    np.testing.assert_array_equal(score[test], fold0)
    in_sample = stacking.trees_only_combiner(both.oof, y, w)(both.oof)
    assert rows.all() and not np.array_equal(score, in_sample)
