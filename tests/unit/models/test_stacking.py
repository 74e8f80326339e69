"""The alert score's stacker (models.train.stacking): since 2.1 the sequence model's weight is 0."""

from __future__ import annotations

import numpy as np

from vigil.models.train import stacking


def test_without_the_sequence_model_its_scores_do_not_move_the_risk() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.1).astype(float)
    p_tree = np.clip(0.3 * y + 0.6 * rng.random(4000), 0.01, 0.99)
    p_seq = np.clip(0.2 * y + 0.7 * rng.random(4000), 0.01, 0.99)
    w = np.ones(4000)
    st = stacking.fit(p_tree, p_seq, y, w, sequence=False)
    assert st.params()["sequence"] == 0.0 and st.params()["tree"] > 0
    assert np.array_equal(st.apply(p_tree, p_seq), st.apply(p_tree, rng.random(4000)))
    with_seq = stacking.fit(p_tree, p_seq, y, w)
    assert with_seq.params()["sequence"] > 0  # the 2.0 stacker used it


def test_calibration_tells_a_risk_twice_too_high_from_a_calibrated_one() -> None:
    rng = np.random.default_rng(1)
    p = rng.uniform(0.0, 0.4, 50_000)
    y = (rng.random(len(p)) < p).astype(float)  # the risk is the event's probability
    good, high = stacking.calibration(y, p), stacking.calibration(y, np.minimum(2 * p, 1.0))
    assert good["hours"] == high["hours"] == len(p) and good["observed"] == high["observed"]
    assert good["ece"] < 0.01 and abs(good["mean_risk"] - good["observed"]) < 0.01
    assert high["ece"] > 0.15 and high["mean_risk"] > 1.8 * high["observed"]
    assert len(good["reliability"]) == 10 and [r["bin"] for r in good["reliability"]] == list(range(10))
    top = good["reliability"][-1]
    assert top["mean_risk"] > 0.35 and abs(top["mean_risk"] - top["observed"]) < 0.02
