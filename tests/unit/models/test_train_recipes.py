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
