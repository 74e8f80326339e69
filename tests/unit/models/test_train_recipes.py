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


def test_monotone_constraints_bind_levels_of_physiology_only() -> None:
    recipe, _, overrides, rounds = screen.training_mods("full~mono~psmooth")
    assert recipe == "full" and overrides["monotone_constraints"] == "physiology"
    assert overrides["num_leaves"] == screen.PARAM_SETS["smooth"][0]["num_leaves"]  # both modifiers kept
    names = ["Lactate_last", "MAP_min_stay", "HR_mean6h", "Lactate_delta", "MAP_rate", "Temp_last", "WBC_last"]
    assert trees.monotone_constraints([*names, "shock_index", "Lactate_hours_since"]) == [1, -1, 1, 0, 0, 0, 0, 1, 0]


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


@pytest.mark.parametrize("config", ["full~thin0", "full~thin100", "full~thinx", "full~pnope", "full~x"])
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
        "previous_bundle": {"version": "2.2.0"},
    }
    path.write_text(json.dumps(old))
    metrics_file.record(path, "threshold_rules", [{"rule": "best"}])
    assert json.loads(path.read_text())["screen_v2"] == old["screen_v2"]  # record keeps the other keys
    new = {"combined": {"cv": {"auroc": 0.81}}}
    carried = metrics_file.carry_recipe_studies(path, new)
    assert carried == ["screen_v2", "threshold_rules", "unit_gap"]
    assert new["combined"] == {"cv": {"auroc": 0.81}} and "previous_bundle" not in new
    path.write_text("{not json")
    assert metrics_file.carry_recipe_studies(path, {}) == []
