"""STOP-GAP stepping bundle, so the stream can be wired and tested before the trained whole-stay
models ship (issue 13). Not a release: the models engineer's artifacts replace it.

- deterioration: a one-step graph built from bundle 1.0.0's GRU weights (``models/artifacts/
  deterioration.onnx``, trained on 48-hour windows), fed the stepping core's sequence inputs mapped
  onto its old channels (value kept while measured within 48 h, "available" = measured within 48 h,
  Age, Gender). It now runs over the whole stay from admission instead of a zero-padded window, so
  it is a different model from the one its card describes.
- sepsis_diagnosis: a quick LightGBM (``models.train.trees`` settings, fewer rounds) on the stepping
  core's whole-stay tree features of a seeded 70 % of set A's stays, label ``SepsisLabel``.
- combined: logistic stacker on the two log-odds + isotonic calibration, fitted on half of the other
  30 %; thresholds maximize the normalized utility on the last half.
- training_reference.json: measurement rates and the top-8 (gain) features' deciles with bin shares.

The manifest is the models engineer's ``stepping-v2`` format (``models.bundle``).

Run (no PyTorch needed): ``.venv/bin/python -m vigil.models.train.stopgap_step [--out DIR]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from vigil.models.drift import REFERENCE_FILE, DriftReference
from vigil.models.stay_features import N_SEQUENCE_INPUTS, SEQUENCE_INPUTS, TREE_FEATURES, USED_CODES
from vigil.models.stepping import run_chains, stay_inputs
from vigil.models.train import trees
from vigil.models.train.data import load_cohort
from vigil.models.train.step_graph import GruWeights, step_model
from vigil.models.utility import auroc_auprc, normalized_utility
from vigil.schemas.codes import DYNAMIC_CODES

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
OUT = ARTIFACTS / "stopgap_stepping"
SEED = 2019
ROUNDS = 120
VERSION = "0.1.0-stopgap"
TOP_DRIFT_FEATURES = 8


def v1_gru_step(v1_onnx: Path) -> onnx.ModelProto:
    """The one-step graph of bundle 1.0.0's GRU, taking the stepping core's sequence inputs."""
    init = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(v1_onnx)).graph.initializer}
    embed_w = next(v for v in init.values() if v.ndim == 2 and v.shape[0] == 2 * len(DYNAMIC_CODES) + 2)
    gru = sorted((k for k, v in init.items() if v.ndim == 3), key=lambda k: k)  # W then R (exporter order)
    w, r = init[gru[0]], init[gru[1]]
    b = next(v for v in init.values() if v.ndim == 2 and v.shape[0] == 1 and v.shape[1] == 2 * w.shape[1])
    n_dyn, k = len(DYNAMIC_CODES), len(USED_CODES)
    used = [DYNAMIC_CODES.index(c) for c in USED_CODES]
    # old channels: value per code (34), available per code (34), Age, Gender; EtCO2 never reaches it
    rows = used + [n_dyn + i for i in used] + [2 * n_dyn, 2 * n_dyn + 1]
    weights = GruWeights(
        embed_w[rows],
        init["embed.0.bias"],
        w,
        r,
        b,
        [(init["head.0.weight"], init["head.0.bias"]), (init["head.2.weight"], init["head.2.bias"])],
    )

    def const(name: str, v: list[int] | float) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(v, np.int64 if isinstance(v, list) else np.float32), name)

    pre_init = [
        const("v_lo", [0]),
        const("v_hi", [k]),
        const("s_lo", [2 * k]),
        const("s_hi", [3 * k]),
        const("a_lo", [3 * k]),
        const("a_hi", [3 * k + 2]),
        const("cols", [1]),
        const("one", 1.0),
    ]
    pre = [
        helper.make_node("Slice", ["x", "v_lo", "v_hi", "cols"], ["value"]),
        helper.make_node("Slice", ["x", "s_lo", "s_hi", "cols"], ["stale"]),
        helper.make_node("Slice", ["x", "a_lo", "a_hi", "cols"], ["age_gender"]),
        helper.make_node("Less", ["stale", "one"], ["within48"]),  # staleness < 1: measured in the last 48 h
        helper.make_node("Cast", ["within48"], ["available"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Mul", ["value", "available"], ["value48"]),
        helper.make_node("Concat", ["value48", "available", "age_gender"], ["v1_channels"], axis=1),
    ]
    return step_model(weights, N_SEQUENCE_INPUTS, pre, pre_init, embed_input="v1_channels")


def _best_threshold(labels: list[np.ndarray], probs: list[np.ndarray]) -> float:
    flat = np.concatenate(probs)
    grid = np.unique(np.quantile(flat, np.linspace(0.5, 0.99, 50)))
    utils = [normalized_utility(labels, [(p >= t).astype(np.int8) for p in probs]) for t in grid]
    return float(grid[int(np.argmax(utils))])


def _stack(
    p_tree: np.ndarray, p_seq: np.ndarray, y: np.ndarray, fit: np.ndarray
) -> tuple[dict[str, float], dict[str, list[float]], np.ndarray]:
    """Logistic stacker on both log-odds, then isotonic calibration, fitted on the ``fit`` rows."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    def logit(p: np.ndarray) -> np.ndarray:
        p = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p))

    z = np.stack([logit(p_tree), logit(p_seq)], -1)
    lr = LogisticRegression(C=1.0).fit(z[fit], y[fit])
    stacked = lr.predict_proba(z)[:, 1]
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(stacked[fit], y[fit])
    stacker = {"tree": float(lr.coef_[0, 0]), "sequence": float(lr.coef_[0, 1]), "bias": float(lr.intercept_[0])}
    calibration = {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
    return stacker, calibration, np.interp(stacked, calibration["x"], calibration["y"]).astype(np.float32)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    t0 = time.perf_counter()
    cohort = load_cohort()
    n = len(cohort.lengths)
    perm = np.random.default_rng(SEED).permutation(n)
    train, hold = np.sort(perm[: int(0.7 * n)]), np.sort(perm[int(0.7 * n) :])
    step_onnx = v1_gru_step(ARTIFACTS / "deterioration.onnx")

    def inputs_of(patients: np.ndarray) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
        stays, feats, rows, labels = [], [], [], []
        for p in patients.tolist():
            m, s, lab = cohort.stay(p)
            inp = stay_inputs(m, s)
            stays.append(inp)
            feats.append(inp.tree_features(np.arange(len(m)), s))
            rows.append(m)
            labels.append(lab)
        return stays, np.concatenate(feats), np.concatenate(rows), np.concatenate(labels)

    tr_stays, x_tr, rows_tr, y_tr = inputs_of(train)
    print(f"features: train {x_tr.shape} in {time.perf_counter() - t0:.0f}s")
    params = dict(trees.LGBM_PARAMS, seed=SEED, bagging_seed=SEED, feature_fraction_seed=SEED)
    import lightgbm as lgb

    booster = lgb.train(params, lgb.Dataset(x_tr, label=y_tr, feature_name=TREE_FEATURES), num_boost_round=ROUNDS)
    print(f"lightgbm: {ROUNDS} rounds in {time.perf_counter() - t0:.0f}s")

    from vigil.models.session import create_session
    from vigil.models.step_session import StepSession

    step = StepSession(create_session(step_onnx.SerializeToString(), prefer_gpu=False), 32)
    ho_stays, x_ho, _, _ = inputs_of(hold)
    ho_labels = [cohort.stay(p)[2] for p in hold.tolist()]
    p_tree = booster.predict(x_ho).astype(np.float32)
    p_seq = np.concatenate([pr for _, pr in run_chains(step, [(None, s.sequence) for s in ho_stays], 32)])
    bounds = np.r_[0, np.cumsum([len(lab) for lab in ho_labels])]

    def per_stay(p: np.ndarray) -> list[np.ndarray]:
        return [p[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    y_ho = np.concatenate(ho_labels)
    fit_rows = np.repeat(np.arange(len(ho_labels)) % 2 == 0, [len(lab) for lab in ho_labels])
    stacker, calibration, comb = _stack(p_tree, p_seq, y_ho, fit_rows)
    thr_labels = [lab for i, lab in enumerate(ho_labels) if i % 2]
    figures, thresholds = {}, {}
    for name, p in (("sepsis_diagnosis", p_tree), ("deterioration", p_seq), ("combined", comb)):
        thr_probs = [q for i, q in enumerate(per_stay(p)) if i % 2]
        thresholds[name] = _best_threshold(thr_labels, thr_probs)
        auroc, auprc = auroc_auprc(y_ho[~fit_rows], p[~fit_rows])
        util = normalized_utility(thr_labels, [(q >= thresholds[name]).astype(np.int8) for q in thr_probs])
        figures[name] = {"auroc": round(auroc, 4), "auprc": round(auprc, 4), "utility": round(util, 4)}
    print("holdout (15 % of set A, stays never fitted on; utility in-sample for its threshold):", json.dumps(figures))

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "deterioration_step.onnx").write_bytes(step_onnx.SerializeToString())
    trees.export_onnx(booster, len(TREE_FEATURES), str(out / "sepsis_diagnosis.onnx"))
    np.savez_compressed(out / "sepsis_diagnosis_trees.npz", **trees.tree_table(booster))
    gain = booster.feature_importance(importance_type="gain")
    top = [TREE_FEATURES[i] for i in np.argsort(-gain)[:TOP_DRIFT_FEATURES]]
    reference = DriftReference.build(
        ~np.isnan(rows_tr),
        x_tr[:, [TREE_FEATURES.index(f) for f in top]],
        DYNAMIC_CODES,
        top,
        source=f"PhysioNet/CinC 2019 set A, {len(train)} stays (seed {SEED}), every ICU hour",
    )
    (out / REFERENCE_FILE).write_text(reference.to_json())
    files = ["deterioration_step.onnx", "sepsis_diagnosis.onnx", "sepsis_diagnosis_trees.npz", REFERENCE_FILE]
    manifest = {
        "format": "stepping-v2",
        "version": VERSION,
        "stopgap": "models/train/stopgap_step.py: bundle 1.0.0's GRU weights as a one-step graph + a quick "
        "LightGBM on the stepping features; for wiring and tests until the trained stepping bundle ships",
        "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": SEED,
        "training_data": "PhysioNet/CinC Challenge 2019 training set A (ODbL 1.0), doi:10.13026/v64v-d857",
        "tree_features": TREE_FEATURES,
        "sequence_inputs": SEQUENCE_INPUTS,
        "holdout": figures,
        "models": {
            "sepsis_diagnosis": {
                "file": "sepsis_diagnosis.onnx",
                "contributions_file": "sepsis_diagnosis_trees.npz",
                "version": VERSION,
                "threshold": thresholds["sepsis_diagnosis"],
            },
            "deterioration": {
                "file": "deterioration_step.onnx",
                "hidden": 32,
                "version": VERSION,
                "threshold": thresholds["deterioration"],
            },
            "combined": {
                "stacker": stacker,
                "calibration": calibration,
                "version": VERSION,
                "threshold": thresholds["combined"],
            },
        },
        "files": {f: {"sha256": _sha(out / f)} for f in files},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {out} in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
