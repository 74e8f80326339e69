"""The screen's recipe modifiers and the bundle's tree settings (issue 12, bundle 2.2)."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.models.train import screen, trees


def test_shipped_tree_settings_are_the_screened_smooth_set() -> None:
    # docs/models.md credits bundle 2.2 with the figures of ``full~psmooth``: the two must not drift apart
    overrides, rounds = screen.PARAM_SETS["smooth"]
    assert {k: trees.WEIGHTED_PARAMS[k] for k in overrides} == overrides
    assert rounds == trees.WEIGHTED_ROUNDS


def test_v21_set_reproduces_the_old_recipe_whatever_the_bundle_ships() -> None:
    overrides, rounds = screen.PARAM_SETS["v21"]
    assert overrides == {"num_leaves": 15, "min_data_in_leaf": 800, "lambda_l2": 10.0} and rounds == 200
    for name, (settings, _) in screen.PARAM_SETS.items():  # every set names each setting it moves
        assert {"num_leaves", "min_data_in_leaf", "lambda_l2"} <= settings.keys(), name


def test_training_mods_parse_thinning_and_settings() -> None:
    assert screen.training_mods("full") == ("full", 0, {}, None)
    recipe, thin, overrides, rounds = screen.training_mods("full+sig~thin20~pdeep")
    assert (recipe, thin) == ("full+sig", 20)
    assert (overrides, rounds) == screen.PARAM_SETS["deep"]
    overrides["num_leaves"] = 2  # a copy: the table itself is untouched
    assert screen.PARAM_SETS["deep"][0]["num_leaves"] == 63
    # ~aug<K>: the same thinned copy, trained on beside the stays as recorded
    assert screen.training_mods("full~aug50~mono")[:2] == ("full", 50) and screen.augmented("full~aug50~mono")
    assert not screen.augmented("full~thin50") and not screen.augmented("full+aug")


def test_taught_thinned_reads_every_config_a_latched_one_included() -> None:
    for config in ("full~thin20", "full~psmooth~mono~aug50", "full~psmooth~mono~augmix10", "full~aug50~latch0.8"):
        assert screen.taught_thinned(config), config
    for config in ("full", "full~psmooth~mono~augdaily", "full~augdaily30", "full~psmooth~latch0.8", "full+aug"):
        assert not screen.taught_thinned(config), config
    with pytest.raises(SystemExit):  # the training parser still refuses what it cannot train
        screen.training_mods("full~aug50~latch0.8")


def test_the_reference_is_a_fixed_yardstick_and_rows_record_their_tree_settings() -> None:
    # issue 12's reference keeps 2.1's 200 trees whatever the bundle ships (its rows followed the
    # bundle's defaults once, and stopped reproducing when 2.2 changed them)
    assert screen.training_mods("reference")[2:] == screen.PARAM_SETS["v21"]
    assert screen.training_mods("reference~thin20")[2:] == screen.PARAM_SETS["v21"]
    assert screen.training_mods("reference~psmooth")[2:] == screen.PARAM_SETS["smooth"]
    assert screen.tree_settings("reference") == {
        "num_leaves": 15,
        "min_data_in_leaf": 800,
        "lambda_l2": 10.0,
        "rounds": 200,
        "monotone": False,
    }
    shipped = screen.tree_settings("full~psmooth~mono")
    assert shipped is not None and shipped["monotone"] and shipped["rounds"] == 300
    assert screen.tree_settings("full") == {**shipped, "monotone": False}  # the defaults follow the bundle
    assert screen.tree_settings("gru_e8_h64_n33") is None and screen.tree_settings("v1trees") is None


def test_monotone_constraints_bind_levels_of_physiology_only() -> None:
    recipe, _, overrides, rounds = screen.training_mods("full~mono~psmooth")
    assert recipe == "full" and overrides["monotone_constraints"] == "physiology"
    assert overrides["num_leaves"] == screen.PARAM_SETS["smooth"][0]["num_leaves"]  # both modifiers kept
    names = ["Lactate_last", "MAP_min_stay", "HR_mean6h", "Lactate_delta", "MAP_rate", "Temp_last", "WBC_last"]
    assert trees.monotone_constraints([*names, "shock_index", "Lactate_hours_since"]) == [1, -1, 1, 0, 0, 0, 0, 1, 0]
    # ~mono2 carries the rule to a few more levels, and leaves 2.3's as they are
    assert screen.training_mods("full~mono2")[2]["monotone_constraints"] == "physiology2"
    more = ["SaO2_min_stay", "TroponinI_last", "PTT_max_stay", "Age", "PTT_delta"]
    assert trees.monotone_constraints(more) == [0] * 5
    assert trees.monotone_constraints(more, extended=True) == [-1, 1, 1, 1, 0]
    assert trees.monotone_constraints(names, extended=True) == trees.monotone_constraints(names)


def test_the_bundle_recipe_never_lets_risk_fall_as_lactate_rises() -> None:
    """fit_weighted with the bundle's feature names applies the constraints: trained on a hospital
    where high lactate came with lower risk, the model still does not lower the risk for it."""
    pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6000, 2)).astype(np.float32)
    y = (x[:, 1] - x[:, 0] + 0.3 * rng.normal(size=6000) > 1.0).astype(np.int8)  # risk falls with column 0
    w = np.ones(6000, np.float32)
    grid = np.c_[np.linspace(-3, 3, 50), np.zeros(50)].astype(np.float32)
    free = trees.fit_weighted(x, y, w, 1, overrides={"min_data_in_leaf": 50}, rounds=50)
    bound = trees.fit_weighted(
        x, y, w, 1, ["Lactate_last", "Glucose_last"], overrides={"min_data_in_leaf": 50}, rounds=50
    )
    assert np.diff(free.predict(grid)).min() < 0  # unconstrained, it learns the hospital's direction
    assert np.diff(bound.predict(grid)).min() >= 0  # constrained, never lower for more lactate


def test_the_tree_export_is_byte_for_byte_reproducible(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The converter names each graph with a fresh UUID; the export fixes it, so a retrain at the same
    seed reproduces the manifest's sha256 (and a changed hash means a changed model)."""
    pytest.importorskip("lightgbm")
    pytest.importorskip("onnxmltools")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int8)
    booster = trees.fit_weighted(x, y, np.ones(2000, np.float32), seed=1, overrides={"min_data_in_leaf": 20}, rounds=5)
    paths = [tmp_path / f"{k}.onnx" for k in range(2)]
    for path in paths:
        trees.export_onnx(booster, 3, str(path))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    import onnx

    assert onnx.load(str(paths[0])).graph.name == trees.GRAPH_NAME


@pytest.mark.parametrize(
    "config", ["full~thin0", "full~thin100", "full~thinx", "full~thinn20", "full~aug", "full~pnope", "full~x"]
)
def test_unknown_modifiers_stop_the_screen(config: str) -> None:
    with pytest.raises(SystemExit, match="unknown modifier"):
        screen.training_mods(config)


def test_fit_weighted_applies_overrides_and_rounds() -> None:
    pytest.importorskip("lightgbm")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=4000) > 1.0).astype(np.int8)
    w = np.where(y == 1, 1.0, 0.05).astype(np.float32)
    booster = trees.fit_weighted(x, y, w, seed=1, overrides={"num_leaves": 3, "min_data_in_leaf": 20}, rounds=7)
    assert booster.num_trees() == 7
    leaves = [t["num_leaves"] for t in booster.dump_model()["tree_info"]]
    assert max(leaves) <= 3
    default = trees.fit_weighted(x, y, w, seed=1, overrides={"min_data_in_leaf": 20}, rounds=3)
    assert max(t["num_leaves"] for t in default.dump_model()["tree_info"]) > 3


def test_septic_matched_control_trains_on_its_own_folds_with_n_septic_stays() -> None:
    from vigil.models.train.shifts import Utility
    from vigil.models.train.unit_gap import septic_matched_scores

    rng = np.random.default_rng(0)
    n = 60
    lengths = rng.integers(5, 15, n)
    septic = np.arange(n) % 3 == 0
    labels = np.concatenate(
        [np.r_[np.zeros(k - 3), np.ones(3)] if s else np.zeros(k) for k, s in zip(lengths, septic, strict=True)]
    )
    u = Utility(labels.astype(np.int8), lengths)
    fold, unit = np.arange(n) % 4, np.where(np.arange(n) < 40, 1, 2)
    stay_of_row = u.stay_of_row
    seen: list[np.ndarray] = []

    def fit(rows: np.ndarray) -> np.ndarray:
        stays = np.unique(stay_of_row[rows])
        assert rows.sum() == lengths[stays].sum()  # whole stays only
        seen.append(stays)
        return stays

    def predict(model: np.ndarray, rows: np.ndarray, copy: object) -> np.ndarray:
        assert not np.isin(np.unique(stay_of_row[rows]), model).any()  # never a stay it trained on
        return np.full(int(rows.sum()), 0.5)

    medical = unit == 1
    scores, sizes = septic_matched_scores(u, fold, medical, septic, 4, fit, predict, rng)
    assert len(seen) == 4 and (scores[u.rows_of(medical)] == 0.5).all() and (scores[u.rows_of(~medical)] == 0).all()
    for f, stays in enumerate(seen):
        assert (unit[stays] == 1).all() and (fold[stays] != f).all()
        assert septic[stays].sum() == 4
        assert set(np.nonzero(medical & ~septic & (fold != f))[0]) <= set(stays)  # every non-septic stay kept
    assert sizes == [len(s) for s in seen]


def test_a_retrain_keeps_the_recipe_studies_and_drops_the_old_bundles_own(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from vigil.models.train import metrics_file

    path = tmp_path / "metrics.json"
    assert metrics_file.carry_recipe_studies(path, {}) == []  # a first training: nothing to keep
    old = {
        "combined": {"cv": {"auroc": 0.8}, "threshold_by_ward_of_set_a": {"surgical": {}}},
        "screen_v2": [{"config": "full", "seed": 1}],
        "unit_gap": {"config": "full"},
        "importance": {"config": "full"},
        "previous_bundle": {"version": "2.2.0"},
    }
    path.write_text(json.dumps(old))
    metrics_file.record(path, "threshold_rules", [{"rule": "best"}])
    assert json.loads(path.read_text())["screen_v2"] == old["screen_v2"]  # record keeps the other keys
    new = {"combined": {"cv": {"auroc": 0.81}}}
    carried = metrics_file.carry_recipe_studies(path, new)
    assert carried == ["screen_v2", "threshold_rules", "unit_gap", "importance"]
    assert new["combined"] == {"cv": {"auroc": 0.81}} and "previous_bundle" not in new
    path.write_text("{not json")
    assert metrics_file.carry_recipe_studies(path, {}) == []


def test_importance_weights_follow_the_site_odds_clipped_and_normalised() -> None:
    from vigil.models.train.importance import effective_share, importance_weights

    p = np.array([0.5, 0.5, 0.8, 0.2, 0.999, 0.3, 0.7])
    train = np.array([True, True, True, True, True, False, False])
    assert (importance_weights(p, train, "unweighted") == 1).all()
    w = importance_weights(p, train, "odds", clip=10.0)
    assert (w[~train] == 1).all() and np.isclose(w[train].mean(), 1.0)
    assert np.isclose(w[0], w[1]) and np.isclose(w[2] / w[0], 4.0) and np.isclose(w[3] / w[0], 0.25)
    # 5 training rows, 2 site rows: odds x 5/2; row 4's 999 x 2.5 is clipped to 10
    assert np.isclose(w[4] / w[0], 10.0 / 2.5)
    s = importance_weights(p, train, "sqrt_odds", clip=10.0)
    assert np.isclose(s[train].mean(), 1.0) and np.isclose(s[2] / s[0], 2.0)
    assert effective_share(np.ones(5)) == 1.0
    assert effective_share(s[train]) > effective_share(w[train])  # tempering keeps more of the sample


def test_site_probability_is_cross_fitted_and_finds_a_shifted_feature() -> None:
    from vigil.models.train.importance import site_probability, what_tells_them_apart
    from vigil.models.utility import auroc_auprc

    rng = np.random.default_rng(0)
    n = 4000
    site = rng.random(n) < 0.3
    x = np.c_[rng.normal(site * 1.5, 1.0), rng.normal(0, 1, n)].astype(np.float32)
    fold = np.arange(n) % 4
    p = site_probability(x, site, fold, seed=1)
    assert 0.8 < auroc_auprc(site.astype(int), p)[0] < 0.9  # the shift's own separability, not memorised
    noise = site_probability(x[:, 1:], site, fold, seed=1)
    assert auroc_auprc(site.astype(int), noise)[0] < 0.6 and abs(noise.mean() - site.mean()) < 0.05
    told = what_tells_them_apart(x, site, ["HR_rate", "HR_last"], seed=1)  # a rate, then a value
    assert list(told["top"]) == ["HR_rate", "HR_last"] and told["top"]["HR_rate"] > 0.8
    assert told["measurement_pattern_share"] == told["top"]["HR_rate"]


def test_unit_predictions_train_on_one_unit_and_score_the_other() -> None:
    from vigil.models.train.shifts import Utility, unit_block, unit_predictions

    lengths = np.full(8, 10)
    labels = np.zeros(80, np.int8)
    labels[8:10] = labels[68:70] = 1
    u = Utility(labels, lengths)
    row_unit, row_fold = u.rows_of(np.r_[[1] * 4, [2] * 4]), u.rows_of(np.arange(8) % 2)
    fits: list[np.ndarray] = []

    def fit(rows: np.ndarray) -> np.ndarray:
        fits.append(rows)
        return rows

    def predict(model: np.ndarray, rows: np.ndarray, copy: object) -> np.ndarray:
        assert not (model & rows).any()
        return labels[rows] * 0.9 + 0.05

    other, inner, thinned = unit_predictions(row_fold, row_unit, 2, fit, predict, [("labs", 7)])
    assert (fits[0] == (row_unit == 2)).all() and len(fits) == 3  # the thinned copy is scored, not refitted
    assert list(thinned) == [("labs", 7)] and thinned[("labs", 7)].shape == (1, 40)
    assert all((f <= (row_unit == 2)).all() for f in fits)
    assert other.shape == (1, 40) and inner.shape == (1, 40)
    blk = unit_block(u, inner, other, row_unit, 2, labels, np.ones(80))
    assert blk["auroc"] == 1.0  # unit 1's rows, scored by unit 2's model
    assert blk["threshold"] == round(u.threshold(inner[0], row_unit == 2), 5)  # chosen on unit 2's own folds


def test_the_card_leaves_reweighting_out_unless_it_gains_under_both_shifts() -> None:
    from vigil.models.train.cards_stepping import importance

    assert importance({}) == ""

    def study(odds_gain: float) -> dict[str, object]:
        cell = {"auroc": 0.74, "utility": 0.3, "effective_share": 1.0}
        shift = {"unweighted": cell, **{v: {**cell, "auroc": 0.74 + odds_gain} for v in ("odds", "sqrt_odds")}}
        seed = {"domain_auroc": 0.87, "unit1->unit2": shift, "unit2->unit1": shift}
        return {"importance": {"config": "full", "clip": 20.0, "seeds": {"1": seed}}}

    assert "does not help" in importance(study(-0.02)) and "a loss in every cell" in importance(study(-0.02))
    assert "gains AUROC under both unit shifts" in importance(study(0.01))
    assert "| surgical -> medical | 1 | 0.870 | 0.740 / 0.300 (1.00) | 0.720 / 0.300 (1.00) |" in importance(
        study(-0.02)
    )


def test_a_study_records_its_summary_and_prints_it_last(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from vigil.models.train import study

    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"screen_v2": [1]}))
    args = study.parser("unit_gap", "unit_gap").parse_args(
        ["--seed", "1", "--seed", "2", "--json", "--record", str(path)]
    )
    assert args.seed == [1, 2] and args.config == "full~psmooth~mono" and args.folds == 4
    assert study.finish(args, "unit_gap", {"config": "full"}) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"config": "full"}
    assert json.loads(path.read_text()) == {"screen_v2": [1], "unit_gap": {"config": "full"}}


def test_the_card_reads_the_compound_shift_and_leaves_out_thinned_training_only_when_it_costs() -> None:
    from vigil.models.train.cards_stepping import COMPOUND, SHIFTS, compound

    def row(config: str, auroc: dict[str, float]) -> dict[str, object]:
        cell = {"auroc": 0.8, "utility": 0.3, "best_utility": 0.32, "alert_share": 0.15}
        r: dict[str, object] = {"config": config, "seed": 1}
        for s in (*SHIFTS, *COMPOUND):
            r[s] = {**cell, "auroc": auroc.get(s, 0.8)}
        r["labs_thinned"] = {**cell, "auroc": auroc.get("labs_thinned", 0.75), "alert_share": 0.1}
        return r

    assert compound({"screen_v2": [{"config": "full", "seed": 1, "cv": {}}]}) == ""  # protocol 3 only
    base = row("full~psmooth~mono", {COMPOUND[0]: 0.74, COMPOUND[1]: 0.7})
    costly = row(
        "full~psmooth~mono~thin50", {COMPOUND[0]: 0.76, COMPOUND[1]: 0.7, "unit1->unit2": 0.78, "labs_thinned": 0.77}
    )
    text = compound({"screen_v2": [base, costly]})
    assert "| full~psmooth~mono~thin50 | 1 | +0.000 to +0.020 | -0.020 to +0.000 |" in text
    assert "Left out: every one of them" in text
    free = row(
        "full~psmooth~mono~aug50", {COMPOUND[0]: 0.76, COMPOUND[1]: 0.7}
    )  # gains where thinned, costs nothing as drawn
    assert "Left out" not in compound({"screen_v2": [base, free]})


def test_the_scheduled_labs_copy_restarts_the_schedule_with_each_stay() -> None:
    from vigil.models.shift import KINDS
    from vigil.models.train.cohort_features import Matrices
    from vigil.models.train.data import Cohort

    lengths = np.array([30, 30])
    matrix = np.full((60, len(KINDS["labs"]) + len(KINDS["vitals"])), np.nan, np.float32)
    lab = int(KINDS["labs"][0])
    matrix[[0, 10, 29, 30, 40, 59], lab] = 1.0  # stay 2's first draw is one hour after stay 1's last
    matrix[:, int(KINDS["vitals"][0])] = 80.0
    n = len(lengths)
    c = Cohort(matrix, np.zeros(60, np.int8), lengths, np.full(n, 60.0), np.ones(n), np.arange(n), {})
    mats = Matrices(c)
    daily = mats.cohort(("labs_every", 24))
    assert np.nonzero(~np.isnan(daily.matrix[:, lab]))[0].tolist() == [0, 29, 30, 59]
    np.testing.assert_array_equal(daily.matrix[:, int(KINDS["vitals"][0])], 80.0)
    assert mats.tag(("labs_every", 24)) == "labs-every24h" and mats.tag(("labs", 1)) == "labs0.1-s1"
    assert mats.cohort(("labs_every", 24)) is daily  # built once


def test_the_card_judges_thinned_training_where_labs_come_by_routine() -> None:
    from vigil.models.train.cards_stepping import COMPOUND, DAILY, SHIFTS, scheduled

    def row(config: str, daily: float, seed: int = 1, drawn: float = 0.8) -> dict[str, object]:
        cell = {"auroc": 0.8, "utility": 0.3, "best_utility": 0.32, "alert_share": 0.15}
        r: dict[str, object] = {"config": config, "seed": seed, **{s: dict(cell) for s in (*SHIFTS, *COMPOUND)}}
        r["unit1->unit2"] = {**cell, "auroc": drawn}
        r["labs_thinned"] = {**cell, "auroc": 0.76 if config == "full~psmooth~mono" else 0.78}
        r[DAILY] = {**cell, "auroc": daily}
        return r

    assert scheduled({"screen_v2": [{"config": "full", "seed": 1, "cv": {}}]}) == ""  # protocol 4 only
    base = row("full~psmooth~mono", 0.77)
    taught = row("full~psmooth~mono~thin50", 0.775, drawn=0.78)
    text = scheduled({"screen_v2": [base, taught]})
    assert "| full~psmooth~mono | 1 | 0.800 / 0.300 (0.320) | 0.760 / 0.300 (0.320) | 0.770 / 0.300 (0.320) |" in text
    assert "the schedule costs 0.030 to 0.030 AUROC against CV, random thinning 0.040 to 0.040" in text
    assert "| full~psmooth~mono~thin50 | 1 | +0.020 / +0.000 | +0.005 / +0.000 | -0.020 |" in text
    assert "they rank +0.005 to +0.005 AUROC against `full~psmooth~mono`; where the test is thinned" in text
    assert "so 25 % of that gain is left on a schedule" in text
    assert "each gains less there than it loses on its worst shift as drawn (-0.020 to -0.020)" in text
    # with the paired bootstrap recorded, its interval is shown and counted
    paired = [
        {
            "a": "full~psmooth~mono",
            "b": "full~psmooth~mono~thin50",
            "seed": 1,
            "shifts": {
                DAILY: {"auroc_lo": 0.002, "auroc_hi": 0.008},
                "labs_thinned": {"auroc_lo": 0.015, "auroc_hi": 0.025},
            },
        }
    ]
    text = scheduled({"screen_v2": [base, taught], "paired": paired})
    assert "| +0.020 [+0.015, +0.025] / +0.000 | +0.005 [+0.002, +0.008] / +0.000 |" in text
    assert "(1 of 1 with the interval above zero)" in text
    # a recipe that gains more on the schedule than it loses as drawn is not called a bad trade
    free = scheduled({"screen_v2": [base, row("full~psmooth~mono~aug50", 0.79, drawn=0.795)]})
    assert "does not pay" not in free
    other = row("full~psmooth~mono", 0.77, seed=2)
    mixed = scheduled({"screen_v2": [base, other, row("x~thin50", 0.79), row("x~thin50", 0.771, seed=2)]})
    assert "Taught on randomly thinned" not in mixed  # compared only with `base` on the same folds


def test_the_card_takes_the_worst_case_over_the_shifts_no_recipe_was_taught_on() -> None:
    from vigil.models.train.cards_stepping import COMPOUND, DAILY, ROUTINE, SHIFTS, routine

    def row(config: str, compound: float, by_routine: float, seed: int = 1) -> dict[str, object]:
        cell = {"auroc": 0.8, "utility": 0.3}
        r: dict[str, object] = {"config": config, "seed": seed, **{s: dict(cell) for s in (*SHIFTS, DAILY)}}
        r.update({c: {**cell, "auroc": compound} for c in COMPOUND})
        r.update({c: {**cell, "auroc": by_routine, "utility": 0.2} for c in ROUTINE})
        return r

    assert routine({"screen_v2": [{"config": "full", "seed": 1, "cv": {}}]}) == ""  # protocol 5 only
    # taught on randomly thinned labs: far better where the compound thins at random, worse by routine
    base, taught = row("full~psmooth~mono", 0.70, 0.75), row("full~psmooth~mono~thin50", 0.74, 0.73)
    text = routine({"screen_v2": [base, taught]})
    assert "| full~psmooth~mono | 1 | 0.800 / 0.300 | 0.700 / 0.300 | 0.750 / 0.200 |" in text
    assert "| 0.700 / 0.200 | **0.750 / 0.200** |" in text  # worst of 10, worst without random thinning
    assert (
        "| full~psmooth~mono~thin50 | 1 | -0.020 / +0.000 | -0.020 / +0.000 | +0.030 / +0.000 | -0.020 / +0.000 |"
        in text
    )
    assert "worst case moves -0.020 to -0.020 AUROC" in text and "0 of 1 runs are better on both" in text
    paired = [
        {
            "a": "full~psmooth~mono",
            "b": "full~psmooth~mono~thin50",
            "seed": 1,
            "shifts": {ROUTINE[0]: {"auroc_lo": -0.03, "auroc_hi": -0.01}},
        }
    ]
    assert "| -0.020 [-0.030, -0.010] / +0.000 | -0.020 / +0.000 |" in routine(
        {"screen_v2": [base, taught], "paired": paired}
    )
    # taught on labs once a day: its worst case leaves the scheduled shifts out, the random compound in
    daily = row("full~psmooth~mono~augdaily", 0.72, 0.90)
    text = routine({"screen_v2": [base, daily]})
    assert "**0.800 / 0.200** (taught)" in text  # the main table's column, marked: not its untaught worst
    assert "Taught on labs once a day" in text and "the 7 shifts without a schedule" in text
    assert (
        "| full~psmooth~mono~augdaily | 1 | +0.000 / +0.000 | +0.150 / +0.000 | +0.000 / +0.000 | +0.020 / +0.000 "
        "| +0.000 / +0.000 | 0.720 / 0.300; 0.700 / 0.300 |" in text
    )
    assert "Taught on randomly thinned labs" not in text  # ~augdaily is not one of the ~aug<K> recipes


def test_the_card_judges_each_recipe_on_the_panels_shift_and_the_shifts_it_was_not_taught() -> None:
    from vigil.models.train.cards_stepping import COMPOUND, DAILY, PANELS, ROUTINE, SHIFTS, panels

    def row(config: str, thinned: float, daily: float, omitted: float) -> dict[str, object]:
        cell = {"auroc": 0.8, "utility": 0.3, "best_utility": 0.32}
        r: dict[str, object] = {"config": config, "seed": 1, **{s: dict(cell) for s in (*SHIFTS, *ROUTINE)}}
        r.update({s: {**cell, "auroc": thinned} for s in ("labs_thinned", *COMPOUND)})
        r[DAILY] = {**cell, "auroc": daily}
        r[PANELS] = {**cell, "auroc": omitted, "utility": 0.25}
        return r

    assert panels({"screen_v2": [{"config": "full", "seed": 1, "cv": {}}]}) == ""  # before protocol 7
    rows = [
        row("full~psmooth~mono", 0.70, 0.72, 0.78),  # as recorded: judged without the random thinning
        row("full~psmooth~mono~augdaily", 0.70, 0.60, 0.78),  # the daily copy: without the schedules
        row("full~psmooth~mono~augmix10", 0.60, 0.60, 0.79),  # both copies: on neither
    ]
    text = panels({"screen_v2": rows})
    assert (
        "| full~psmooth~mono | 1 | 0.800 / 0.300 | 0.780 / 0.250 (0.320) | -0.020 / -0.050 | 0.720 / 0.250 (of 8) |"
        in text
    )
    assert (
        "| full~psmooth~mono~augdaily | 1 | 0.800 / 0.300 | "
        "0.780 / 0.250 (0.320) | -0.020 / -0.050 | 0.700 / 0.250 (of 8) |" in text
    )
    assert (
        "| full~psmooth~mono~augmix10 | 1 | 0.800 / 0.300 | "
        "0.790 / 0.250 (0.320) | -0.010 / -0.050 | 0.790 / 0.250 (of 5) |" in text
    )
    assert "Paired over stays" not in text
    diff = {
        "auroc": -0.004,
        "auroc_lo": -0.008,
        "auroc_hi": 0.001,
        "utility": 0.01,
        "utility_lo": -0.02,
        "utility_hi": 0.03,
    }
    entry = {"a": "x", "b": "y", "seed": 2, "rule": "prev1.5", "shifts": {PANELS: diff, "worst": diff}}
    text = panels({"screen_v2": rows, "paired": [entry, {"a": "x", "b": "z", "seed": 1, "shifts": {"cv": diff}}]})
    assert (
        "| x | y | 2 | prev1.5 | -0.004 [-0.008, +0.001] | +0.010 [-0.020, +0.030] | -0.004 [-0.008, +0.001] |" in text
    )
    assert "| x | z |" not in text  # recorded before protocol 7
    # taught on both copies: judged here only, not beside the recipes taught on one of them
    from vigil.models.train.cards_stepping import _taught_against, _taught_on_routine

    routine_text = _taught_on_routine(rows, "full~psmooth~mono", {})
    assert "| full~psmooth~mono~augdaily | 1 |" in routine_text and "augmix10" not in routine_text
    assert _taught_against(rows, "full~psmooth~mono") == []


def test_the_card_shows_the_paired_worst_case_by_threshold_rule_and_keeps_the_rules_apart() -> None:
    from vigil.models.train.cards_stepping import ROUTINE, _paired_intervals, _worst_paired

    base = "full~psmooth~mono"
    interval = {"auroc": 0.01, "auroc_lo": 0.002, "auroc_hi": 0.018, "utility": 0.024}
    worst = {**interval, "utility_lo": -0.024, "utility_hi": 0.039, "a_auroc": 0.707, "b_auroc": 0.717}
    worst |= {"a_utility": 0.281, "b_utility": 0.304}
    routine_cell = {"auroc_lo": -0.03, "auroc_hi": -0.01}
    entries = [
        {"a": base, "b": f"{base}~aug50", "seed": 1, "shifts": {ROUTINE[0]: routine_cell}},  # recorded before `worst`
        {
            "a": base,
            "b": f"{base}~aug50",
            "seed": 1,
            "rule": "served-risk",
            "shared_draws": True,
            "shifts": {"worst": worst},
        },
        {"a": "other", "b": f"{base}~aug50", "seed": 1, "shifts": {"worst": worst}},
    ]
    text = _worst_paired({"paired": entries}, base)
    assert (
        "| full~psmooth~mono~aug50 | 1 | served-risk | 0.707 / 0.281 | 0.717 / 0.304 | +0.010 [+0.002, +0.018] "
        "| +0.024 [-0.024, +0.039] |" in text
    )
    assert "†" not in text  # every shift weighed by one resample per draw: a bootstrap of the worst case
    # recorded before the draws were shared: flagged, its interval not a bootstrap of the worst case
    before = _worst_paired({"paired": [{**entries[1], "shared_draws": False}]}, base)
    assert "| full~psmooth~mono~aug50 | 1 † | served-risk |" in before and "Rows marked † were recorded" in before
    assert text.count("| full~psmooth~mono~aug50 |") == 1  # only entries against `base` that carry `worst`
    assert _worst_paired({"paired": entries[:1]}, base) == ""
    # the shipped threshold's tables never read an interval measured at another rule
    assert _paired_intervals({"paired": entries}, base) == {(f"{base}~aug50", 1): {ROUTINE[0]: routine_cell}}


def test_the_card_shows_a_misstated_prevalence_in_its_own_table_only() -> None:
    from vigil.models.train.cards_stepping import COMPOUND, ROUTINE, threshold_rules_table

    def rec(rule: str, utility: float, share: float = 0.2) -> dict[str, object]:
        cell = {"utility": utility, "alert_share": share}
        units = {k: dict(cell) for k in ("unit1->unit2", "unit2->unit1", *ROUTINE)}
        return {"pred": "full-s1", "rule": rule, **units, **{c: {**cell, "utility": 0.1} for c in COMPOUND}}

    records = [rec("best", 0.24, 0.15), rec("served-risk", 0.28), rec("served-risk x2", 0.2, 0.6)]
    text = threshold_rules_table({"threshold_rules": records})
    assert "| full-s1 | bundle's (`best`) | 0.240 | 0.100 | 15.0 % |" in text
    assert "| full-s1 | site, prevalence as true | 0.280 | 0.100 | 20.0 % |" in text
    assert "| full-s1 | site, prevalence stated x2 | 0.200 | 0.100 | 60.0 % |" in text
    assert text.count("served-risk x2") == 0  # not a rule row of the other tables
    assert "states its septic-stay prevalence wrongly" not in threshold_rules_table({"threshold_rules": records[:2]})
    only_risk = threshold_rules_table({"threshold_rules": [*records[:2], rec("served-risk assumed", 0.05, 0.25)]})
    assert "| full-s1 | mean risk only, the training unit's prevalence assumed | 0.050 | 0.050 | 25.0 % |" in only_risk
    assert only_risk.count("served-risk assumed") == 0


def test_site_relative_habits_divide_by_each_sites_own_mean() -> None:
    assert screen.site_relative("full~psmooth~mono~siterel") and not screen.site_relative("full~psmooth~mono")
    assert screen.training_mods("full~siterel~psmooth")[0] == "full"  # a known modifier, no thinning
    assert {"HR_rate", "Lactate_hours_since", "HR_n24h"} <= screen.MEASUREMENT_HABIT
    assert "HR_last" not in screen.MEASUREMENT_HABIT
    x = np.array([[1.0, 10.0], [3.0, 20.0], [4.0, 30.0], [np.nan, 40.0], [0.0, 50.0]], np.float32)
    site = np.array([1, 1, 2, 2, 3])
    out = screen._divide_by_site_means(x, site, np.array([0]))
    # site 1's mean 2, site 2's 4 (the unmeasured row left out), site 3's 0: left as is
    np.testing.assert_allclose(out[:, 0], [0.5, 1.5, 1.0, np.nan, 0.0])
    np.testing.assert_array_equal(out[:, 1], x[:, 1])  # other columns untouched
    assert x[0, 0] == 1.0  # the input is not modified


def test_an_icu_hours_cap_is_a_known_modifier_and_reads_its_hours() -> None:
    assert screen.icu_cap("full~psmooth~mono~icucap72") == 72
    assert screen.icu_cap("full~psmooth~mono") is None
    assert screen.training_mods("full~icucap48~psmooth")[:2] == ("full", 0)  # no thinning
    with pytest.raises(SystemExit, match="~icucap<hours>"):
        screen.training_mods("full~icucap")


def test_the_gap_by_hour_scores_each_band_of_each_unit_with_every_model() -> None:
    from synthetic import two_unit_stays

    from vigil.models.train.shifts import ShiftPredictions
    from vigil.models.train.unit_gap import by_icu_hour

    rng = np.random.default_rng(3)
    u, unit, row_unit = two_unit_stays(rng, 80)  # stays of 20-39 h: nothing past hour 48
    lab = u.labels
    hour = np.concatenate([np.arange(n) for n in u.lengths])
    perfect, noise = lab.astype(float)[None], rng.random((1, len(lab)))
    # the other unit's model is perfect before hour 12 only
    late_noise = np.where(hour < 12, lab, rng.random(len(lab)))[None]
    pred = ShiftPredictions(
        perfect,
        {},
        {"unit1->unit2": late_noise[:, row_unit == 2], "unit2->unit1": late_noise[:, row_unit == 1]},
        {1: noise[:, row_unit == 1], 2: noise[:, row_unit == 2]},
        other_unit_sched={"unit1->unit2": {24: noise[:, row_unit == 2]}, "unit2->unit1": {24: noise[:, row_unit == 1]}},
    )
    got = by_icu_hour(u, unit, hour, pred)
    for name, a in (("unit1", 1), ("unit2", 2)):
        bands = got[name]
        assert list(bands) == ["0-12", "12-48", "48-"]
        assert sum(b["hours"] for b in bands.values()) == int((row_unit == a).sum())
        assert bands["48-"] == {"hours": 0, "septic_hours": 0}  # no AUROC without both classes
        assert bands["0-12"]["set_a_cv"] == bands["12-48"]["set_a_cv"] == 1.0
        assert bands["0-12"]["other_unit"] == 1.0 > bands["12-48"]["other_unit"]
        assert 0.3 < bands["12-48"]["other_unit_labs_every24h"] < 0.7


def test_single_inputs_are_scored_per_unit_and_band_over_the_rows_where_they_are_known() -> None:
    from synthetic import two_unit_stays

    from vigil.models.train.unit_gap import SIGNAL_INPUTS, input_signal

    rng = np.random.default_rng(4)
    u, unit, row_unit = two_unit_stays(rng, 80)
    lab = u.labels
    names = ["Age", *SIGNAL_INPUTS]
    x = rng.random((len(lab), len(names)))
    hr = names.index("HR_last")
    x[:, hr] = np.where(row_unit == 1, lab, x[:, hr])  # HR tells sepsis apart in unit 1 only
    x[rng.random(len(lab)) < 0.3, hr] = np.nan  # unmeasured hours are left out, not ranked
    hour = np.concatenate([np.arange(n) for n in u.lengths])
    got = input_signal(u, unit, hour, x, names)
    assert got["unit1"]["0-12"]["HR_last"] == got["unit1"]["12-48"]["HR_last"] == 1.0
    assert 0.3 < got["unit2"]["12-48"]["HR_last"] < 0.7
    assert set(SIGNAL_INPUTS) <= set(got["unit2"]["12-48"]) and "Age" not in got["unit2"]["12-48"]


def test_the_card_shows_the_gap_by_hour_and_each_inputs_signal() -> None:
    from vigil.models.train.cards_stepping import _gap_by_hour

    cell = {"hours": 1000, "septic_hours": 10, "set_a_cv": 0.79, "own_unit_cv": 0.77, "other_unit": 0.68}
    by_unit = {"unit1": {"12-48": cell}, "unit2": {"12-48": {**cell, "other_unit": 0.77}}}
    inputs = {
        "unit1": {"12-48": {"hours": 1000, "septic_hours": 10, "HR_last": 0.612}},
        "unit2": {"12-48": {"HR_last": 0.527}},
    }
    text = _gap_by_hour({"unit_gap_by_hour": {"config": "full", "seeds": {"1": by_unit}, "inputs": inputs}})
    assert "| medical | 12-48 | 1,000 (10) | 0.790 | 0.770 | 0.680 | - |" in text
    assert "| `HR_last` | 0.612 / 0.527 |" in text
    assert _gap_by_hour({}) == ""


def test_each_recipe_trains_on_the_copy_its_modifiers_name() -> None:
    # read from the whole config: tree_recipe strips the modifiers before it fits
    assert screen.training_copies("full~psmooth~mono~augdaily", 1) == [("labs_every", 24)]
    assert screen.augmented("full~psmooth~mono~augdaily")  # beside the stays as recorded, half weight each
    assert screen.training_copies("full~psmooth~mono~aug50", 2) == [("labs", 102)]
    assert screen.training_copies("full~thin20", 1) == [("labs", 101)]
    assert screen.training_copies("full~psmooth~mono", 1) == []
    assert screen.training_copies("full", 1) == []
    # ~augdaily<W>: the same copy at W % of each row's weight
    assert screen.training_copies("full~psmooth~mono~augdaily30", 1) == [("labs_every", 24)]
    assert screen.copy_share("full~psmooth~mono~augdaily30") == pytest.approx(0.3)
    assert screen.copy_share("full~psmooth~mono~augdaily") == screen.copy_share("full~aug50") == 0.5
    assert screen.training_mods("full~psmooth~mono~augdaily30")[:2] == ("full", 0)
    from vigil.models.train.cards_stepping import _taught_daily

    assert _taught_daily("full~psmooth~mono~augdaily30") and not screen.taught_thinned("full~psmooth~mono~augdaily30")
    # ~augmix<K>: both copies, labs thinned at random first, a third of the weight each
    assert screen.training_copies("full~psmooth~mono~augmix10", 2) == [("labs", 102), ("labs_every", 24)]
    assert screen.training_mods("full~psmooth~mono~augmix10")[:2] == ("full", 10)
    assert screen.augmented("full~augmix10") and screen.mixed("full~augmix10") and screen.scheduled("full~augmix10")
    assert screen.weight_shares("full~augmix10") == pytest.approx([1 / 3] * 3)
    assert screen.weight_shares("full~augdaily30") == pytest.approx([0.7, 0.3])
    assert not screen.mixed("full~augdaily") and screen.training_copies("full", 1) == []
    assert _taught_daily("full~augmix10") and screen.taught_thinned("full~augmix10")
    from vigil.models.train.cards_stepping import DAILY, RANDOM_LABS, _untaught

    every = ("cv", "vitals_thinned", DAILY, *RANDOM_LABS)
    assert _untaught("full~augmix10", every) == ("cv", "vitals_thinned")
    assert _untaught("full~augdaily", every) == ("cv", "vitals_thinned", *RANDOM_LABS)
    for bad in ("augdaily0", "augdaily100", "augdailyx", "augmix0", "augmix", "augmixx"):
        with pytest.raises(SystemExit, match=f"unknown modifier ~{bad}"):
            screen.training_mods(f"full~{bad}")
        assert not screen.scheduled(f"full~{bad}")


def test_beside_keeps_every_stays_total_weight() -> None:
    # ~aug<K>, ~augdaily and the bundle's --teach-daily-labs: the copy's rows join at half weight
    x, x_copy = np.arange(6, dtype=np.float32).reshape(3, 2), -np.ones((3, 2), np.float32)
    y, w = np.array([0, 1, 1], np.int8), np.array([1.0, 2.0, 4.0], np.float32)
    xb, yb, wb = trees.beside(x, x_copy, y, w)
    np.testing.assert_array_equal(xb, np.vstack([x, x_copy]))
    np.testing.assert_array_equal(yb, np.r_[y, y])
    assert wb.sum() == pytest.approx(w.sum()) and wb[0] == wb[3] == 0.5
    _, _, w30 = trees.beside(x, x_copy, y, w, copy_share=0.3)  # ~augdaily30
    np.testing.assert_allclose(w30, np.r_[w * 0.7, w * 0.3], rtol=1e-6)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        trees.beside(x, x_copy, y, w, copy_share=1.0)
    # ~augmix<K>: three copies, a third each, every stay's total kept
    xm, ym, wm = trees.weighted_copies([x, x_copy, x_copy * 2], y, w, [1 / 3] * 3)
    assert xm.shape == (9, 2) and (ym == np.tile(y, 3)).all() and wm.sum() == pytest.approx(w.sum())
    for shares in ([0.5, 0.5], [0.0, 0.5, 0.5], [0.5, 0.3, 0.3]):
        with pytest.raises(ValueError, match="one positive share per copy"):
            trees.weighted_copies([x, x_copy, x_copy], y, w, shares)


def test_the_card_sets_the_bundle_against_the_one_it_replaced() -> None:
    from vigil.models.train.cards_stepping import _set_a_best_line, against_previous

    block = {"auroc": 0.8, "utility": 0.4, "alert_share": 0.2}
    metrics = {"combined": {"cv": {**block, "utility": 0.38}, "worst": {"auroc": 0.72, "utility": 0.23}}}
    assert against_previous(metrics) == ""  # nothing to compare with
    metrics["previous_bundle"] = {
        "version": "2.3.0",
        "threshold": 0.0377,
        "threshold_rule": "best",
        "cv": block,
        "unit1->unit2": block,  # a shift the new bundle lacks is left out
        "worst": {"auroc": 0.69, "utility": 0.06},
    }
    table = against_previous(metrics)
    assert "| set A CV (nested) | 0.800 / 0.400 / 20.0 % | 0.800 / 0.380 / 20.0 % | +0.000 | -0.020 |" in table
    assert "medical ICU -> surgical ICU" not in table
    # the two carry different shifts (one added since): the worst case like for like, over those both carry
    assert "| **worst of the 1 shifts both carry** | **0.800 / 0.400** | **0.800 / 0.380** | +0.000 | -0.020 |" in table
    del metrics["previous_bundle"]["unit1->unit2"]  # the same shifts: each bundle's own worst case
    table = against_previous(metrics)
    assert "| **worst case** | **0.690 / 0.060** | **0.720 / 0.230** | +0.030 | +0.170 |" in table
    assert "counted a stay's hours" not in table  # both from the file's first row
    metrics["cohort"] = {"hour_zero": {"anchor": "first-measurement"}}
    assert "2.3.0 counted a stay's hours from its file's first row, this bundle from its first measurement" in (
        against_previous(metrics)
    )
    manifest = {"models": {"combined": {"threshold": 0.0558, "set_a_best_threshold": 0.0385}}}
    assert "0.0385" in _set_a_best_line(manifest)
    manifest["models"]["combined"]["set_a_best_threshold"] = 0.0558  # a bundle whose default is set A's best
    assert _set_a_best_line(manifest) == ""


def test_the_card_says_where_each_stays_hours_start() -> None:
    from vigil.models.train.cards_stepping import _hour_zero_line

    assert "its file's first row" in _hour_zero_line({})  # a bundle trained before 2.7 has no record
    line = _hour_zero_line(
        {
            "hour_zero": {
                "anchor": "first-measurement",
                "stays_trimmed": 12839,
                "hours_left_out": 13206,
                "septic_hours_left_out": 155,
                "stays_without_measurement": 0,
            }
        }
    )
    assert "first measured row" in line and "12,839 stays" in line and "155 of them SepsisLabel hours" in line
