"""A TINY SEEDED TEST BUNDLE in the stepping layout (not a model: random GRU weights, a 10-tree
LightGBM on synthetic stays). Tests of the serving contract use it so they hold whatever the
shipped artifacts are."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from synthetic import synthetic_stay

from vigil.models.drift import REFERENCE_FILE, DriftReference
from vigil.models.stay_features import SEQUENCE_INPUTS, TREE_FEATURES
from vigil.models.stepping import stay_inputs
from vigil.models.train import trees
from vigil.models.train.contrib_graph import CONTRIB_FILE, write_contribution_graph
from vigil.models.train.step_graph import GruWeights, step_model
from vigil.schemas.codes import DYNAMIC_CODES

HIDDEN = 8
STATIC = {"Age": 71.0, "Gender": 0.0}


def build_test_bundle(out: Path, seed: int = 0, sequence_inputs: list[str] | None = None) -> Path:
    """``sequence_inputs``: what its GRU reads (default every input, ``SEQUENCE_INPUTS``)."""
    import lightgbm as lgb

    rng = np.random.default_rng(seed)
    feats, rows = [], []
    for i in range(30):
        m = synthetic_stay(rng, 60)[:, : len(DYNAMIC_CODES)].astype(np.float32)
        feats.append(stay_inputs(m, STATIC).tree_features(np.arange(len(m)), STATIC))
        rows.append(m)
        del i
    x, r = np.concatenate(feats), np.concatenate(rows)
    hr = TREE_FEATURES.index("HR_last")
    y = (np.nan_to_num(x[:, hr], nan=85.0) + rng.normal(0, 5, len(x)) > 90).astype(int)
    params = dict(trees.LGBM_PARAMS, min_data_in_leaf=20, seed=seed, num_threads=1)
    booster = lgb.train(params, lgb.Dataset(x, label=y, feature_name=TREE_FEATURES), num_boost_round=10)
    out.mkdir(parents=True, exist_ok=True)
    trees.export_onnx(booster, len(TREE_FEATURES), str(out / "trees.onnx"))
    np.savez_compressed(out / "trees.npz", **trees.tree_table(booster))
    write_contribution_graph(out / "trees.onnx", out / "trees.npz", out / CONTRIB_FILE)
    names = SEQUENCE_INPUTS if sequence_inputs is None else sequence_inputs
    weights = GruWeights.random(len(names), HIDDEN, seed)
    (out / "step.onnx").write_bytes(step_model(weights, len(names)).SerializeToString())
    top = ["HR_last", "Resp_last", "icu_hours"]
    ref = DriftReference.build(
        ~np.isnan(r), x[:, [TREE_FEATURES.index(f) for f in top]], DYNAMIC_CODES, top, "synthetic test stays"
    )
    (out / REFERENCE_FILE).write_text(ref.to_json())
    files = ["trees.onnx", "trees.npz", CONTRIB_FILE, "step.onnx", REFERENCE_FILE]
    manifest = {
        "format": "stepping-v2",
        "version": "test-0",
        "tree_features": TREE_FEATURES,
        "sequence_inputs": names,
        "models": {
            "sepsis_diagnosis": {
                "file": "trees.onnx",
                "contributions_file": "trees.npz",
                "contributions_graph": CONTRIB_FILE,
                "version": "test-0",
                "threshold": 0.5,
            },
            "deterioration": {
                "file": "step.onnx",
                "kind": "gru-step",
                "hidden": HIDDEN,
                "version": "test-0",
                "threshold": 0.5,
            },
            "combined": {
                "stacker": {"tree": 0.6, "sequence": 0.4, "bias": -0.2},
                "calibration": {"x": [0.0, 0.3, 1.0], "y": [0.0, 0.2, 1.0]},
                "version": "test-0",
                "threshold": 0.5,
            },
        },
        "files": {f: {"sha256": hashlib.sha256((out / f).read_bytes()).hexdigest()} for f in files},
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out
