"""The served combined risk (``SteppingBundle.combine``) is training's ``stacking.Stack.apply``: every
threshold in the manifest (the shipped one, the site table, the alert-share curve) was chosen on the
latter's values, so serving another function of the same scores flags another share of hours."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import pytest

from vigil.models.bundle import STEPPING_DIR, SteppingBundle, model_score
from vigil.models.integrity import load_manifest
from vigil.models.train import stacking

ART = Path(os.environ.get("VIGIL_TEST_STEPPING_ARTIFACTS", STEPPING_DIR))


def _served(manifest: dict) -> SteppingBundle:  # type: ignore[type-arg]
    """``combine`` reads the manifest only: no graphs opened."""
    return SteppingBundle(manifest, None, None, {}, ART)


def _trained(manifest: dict) -> stacking.Stack:  # type: ignore[type-arg]
    comb = manifest["models"]["combined"]
    st, cal = comb["stacker"], comb["calibration"]
    return stacking.Stack(np.array([st["tree"], st["sequence"], st["bias"]]), np.array(cal["x"]), np.array(cal["y"]))


@pytest.fixture(scope="module")
def manifest() -> dict:  # type: ignore[type-arg]
    return load_manifest(ART)


def test_the_shipped_manifest_stores_the_rank_keep_training_used(manifest) -> None:  # type: ignore[no-untyped-def]
    assert manifest["models"]["combined"]["calibration"]["rank_keep"] == stacking.RANK_KEEP


def test_combine_is_the_training_form_on_random_scores(manifest) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    p_tree = np.r_[rng.random(20_000), rng.beta(0.3, 8, 20_000), 0.0, 1.0, 1e-7].astype(np.float32)
    p_seq = rng.random(len(p_tree)).astype(np.float32)
    served, trained = _served(manifest).combine(p_tree, p_seq), _trained(manifest).apply(p_tree, p_seq)
    assert served.dtype == np.float64
    np.testing.assert_array_equal(served, trained)  # bit for bit: a threshold on one is on the other
    # and with a sequence weight (the 2.0 stacker): both scores enter alike
    with_seq = copy.deepcopy(manifest)
    with_seq["models"]["combined"]["stacker"]["sequence"] = 0.4
    np.testing.assert_array_equal(_served(with_seq).combine(p_tree, p_seq), _trained(with_seq).apply(p_tree, p_seq))


def test_an_hour_on_the_threshold_is_flagged_as_training_flagged_it(manifest) -> None:  # type: ignore[no-untyped-def]
    """Thresholds are chosen among the training form's own values: an hour whose risk is the threshold
    is flagged (``>=``), which a float32 copy of the risk loses for about half of such hours."""
    rng = np.random.default_rng(1)
    p_tree = rng.beta(0.5, 8, 5_000).astype(np.float32)
    risks = _trained(manifest).apply(p_tree, p_tree)
    served = _served(manifest)
    lost_in_float32 = 0
    for k in rng.choice(len(p_tree), 200, replace=False):
        on = copy.deepcopy(manifest)
        on["models"]["combined"]["threshold"] = float(risks[k])
        risk = float(_served(on).combine(p_tree[k : k + 1], p_tree[k : k + 1])[0])
        assert model_score(on["models"]["combined"], "combined", risk, []).positive
        lost_in_float32 += float(np.float32(risks[k])) < risks[k]
    assert lost_in_float32 > 0  # the failure this guards against does occur at these values
    assert served.combine(p_tree, p_tree).dtype == np.float64


def test_a_manifest_without_rank_keep_serves_the_isotonic_map_alone(manifest) -> None:  # type: ignore[no-untyped-def]
    """Bundles written before training stored ``rank_keep``: their knots are the whole calibration."""
    old = copy.deepcopy(manifest)
    del old["models"]["combined"]["calibration"]["rank_keep"]
    cal, st = old["models"]["combined"]["calibration"], old["models"]["combined"]["stacker"]
    p = np.linspace(0.001, 0.999, 999).astype(np.float32)
    q = p.astype(np.float64)
    stacked = 1 / (1 + np.exp(-(st["tree"] * np.log(q / (1 - q)) + st["bias"])))
    np.testing.assert_array_equal(_served(old).combine(p, p), np.interp(stacked, cal["x"], cal["y"]))


def test_a_nan_from_the_model_of_weight_zero_does_not_reach_the_risk(manifest) -> None:  # type: ignore[no-untyped-def]
    """The shipped stacker weighs the sequence model 0: 0 * NaN is NaN, and one NaN from it made
    the whole batch's patients rules-only."""
    assert manifest["models"]["combined"]["stacker"]["sequence"] == 0
    p_tree = np.array([0.1, 0.6], np.float32)
    risk = _served(manifest).combine(p_tree, np.array([np.nan, 0.5], np.float32))
    assert np.isfinite(risk).all()
    np.testing.assert_array_equal(risk, _served(manifest).combine(p_tree, np.array([0.5, 0.5], np.float32)))
