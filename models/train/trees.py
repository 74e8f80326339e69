"""LightGBM diagnosis model: training, ONNX export, and the flat tree table used for
per-prediction contributions in serving (Saabas path attribution, numpy only)."""

from __future__ import annotations

from typing import Any

import numpy as np

LGBM_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.06,
    "num_leaves": 31,
    "min_data_in_leaf": 300,
    "feature_fraction": 0.6,
    "bagging_fraction": 0.7,
    "bagging_freq": 1,
    "lambda_l2": 5.0,
    "max_bin": 63,
    "num_threads": 2,
    "verbose": -1,
}
N_ROUNDS = 250


def fit(x: np.ndarray, y: np.ndarray, seed: int, names: list[str]):  # type: ignore[no-untyped-def]
    import lightgbm as lgb

    params = dict(LGBM_PARAMS, seed=seed, bagging_seed=seed, feature_fraction_seed=seed)
    ds = lgb.Dataset(x, label=y, feature_name=names, free_raw_data=True)
    return lgb.train(params, ds, num_boost_round=N_ROUNDS)


# The stepping bundle's diagnosis model: utility-weighted targets (models.train.labels), shallow,
# strongly regularized trees (issue 12's reference: 200 such trees held up on an unseen hospital
# where deeper, longer-trained models lost their edge). Since 2.2: 7 leaves of >= 2,000 rows each,
# 300 rounds. Under the unit shifts they rank better than 2.1's 15 leaves of >= 800 rows (AUROC
# +0.003 to +0.011 in all four cells of two seeds, three of them outside a paired bootstrap's 95 %
# interval) at the same set-A CV; docs/models.md, "Shift tests v2".
WEIGHTED_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 7,
    "min_data_in_leaf": 2000,
    "feature_fraction": 0.5,
    "bagging_fraction": 0.7,
    "bagging_freq": 1,
    "lambda_l2": 20.0,
    "max_bin": 63,
    "num_threads": 2,
    "verbose": -1,
}
WEIGHTED_ROUNDS = 300
# Since 2.3: monotone constraints where physiology fixes the direction of sepsis risk (SOFA, SIRS,
# qSOFA, lactate: Singer et al., JAMA 2016;315:801), on the levels only (last value, the stay's and
# the window's extremes and means), never on changes, rates or missingness: the trees may not learn
# "higher lactate, lower risk" from one hospital's practice. Screened as ``full~psmooth~mono``: the
# unit-shift utility at the chosen threshold rose in all four cells of two seeds (+0.016 to +0.101,
# paired 95 % intervals above zero) at the same set-A CV and thinned-lab figures, AUROC within
# -0.004..+0.008; docs/models.md, "Shift tests v2".
MONOTONE_UP = ("HR", "Resp", "Lactate", "Creatinine", "BUN", "Bilirubin_total", "Bilirubin_direct", "FiO2")
MONOTONE_DOWN = ("MAP", "SBP", "O2Sat", "Platelets", "HCO3", "BaseExcess")
MONOTONE_LEVELS = ("last", "max_stay", "min_stay", "mean6h", "mean24h", "min24h", "max24h")
MONOTONE_OTHER = {"shock_index": 1, "spo2_fio2": -1}
# Screened only (``~mono2``): the same rule carried to the levels whose direction is as settled but
# that 2.3 leaves free: arterial saturation (as O2Sat), troponin (myocardial injury) and PTT
# (coagulopathy) rising, and age.
MONOTONE_UP_EXTENDED = (*MONOTONE_UP, "TroponinI", "PTT")
MONOTONE_DOWN_EXTENDED = (*MONOTONE_DOWN, "SaO2")
MONOTONE_OTHER_EXTENDED = {**MONOTONE_OTHER, "Age": 1}


def monotone_constraints(names: list[str], extended: bool = False) -> list[int]:
    """+1 (risk rises with it) / -1 (falls) / 0 (free) per feature name (``extended``: ``~mono2``)."""
    up, down = (MONOTONE_UP_EXTENDED, MONOTONE_DOWN_EXTENDED) if extended else (MONOTONE_UP, MONOTONE_DOWN)
    other = MONOTONE_OTHER_EXTENDED if extended else MONOTONE_OTHER

    def direction(name: str) -> int:
        if name in other:
            return other[name]
        for sign, variables in ((1, up), (-1, down)):
            if any(name == f"{v}_{level}" for v in variables for level in MONOTONE_LEVELS):
                return sign
        return 0

    return [direction(n) for n in names]


def monotone_summary() -> dict[str, Any]:
    """The constraints as the manifest records them."""
    return {"up": list(MONOTONE_UP), "down": list(MONOTONE_DOWN), "levels": list(MONOTONE_LEVELS), **MONOTONE_OTHER}


# Negative hours (97 % of rows, weight 0.05 each) are subsampled to this share with their weight
# scaled up by its inverse: the same expected loss at a third of the cost on 2 cores.
NEGATIVE_SHARE = 0.33


def fit_weighted(  # type: ignore[no-untyped-def]
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    seed: int,
    names: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    rounds: int | None = None,
):
    """The bundle's recipe; ``overrides`` and ``rounds`` change it for screening only. With ``names``
    (the bundle's features) the physiology's monotone constraints apply unless ``overrides`` names
    its own (the screen passes none for recipes recorded before 2.3, and its own with ``~mono``)."""
    import lightgbm as lgb

    keep = (y == 1) | (np.random.default_rng(seed).random(len(y)) < NEGATIVE_SHARE)
    w = np.where(y == 1, w, w / NEGATIVE_SHARE)[keep]
    x, y = x[keep], y[keep]
    params = dict(WEIGHTED_PARAMS, **(overrides or {}), seed=seed, bagging_seed=seed, feature_fraction_seed=seed)
    if names and "monotone_constraints" not in params:
        params["monotone_constraints"] = monotone_constraints(names)
    ds = lgb.Dataset(x, label=y, weight=w, feature_name=names or "auto", free_raw_data=True)
    return lgb.train(params, ds, num_boost_round=rounds or WEIGHTED_ROUNDS)


def beside(
    x: np.ndarray, x_copy: np.ndarray, y: np.ndarray, w: np.ndarray, copy_share: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows as recorded and the same rows from a shifted copy of the stays, the copy's at
    ``copy_share`` of each row's weight and the recorded at the rest, so every stay keeps its total
    weight (the screen's ``~aug<K>``, ``~augdaily`` and ``~augdaily<W>``; the bundle's
    ``--teach-daily-labs``, half each)."""
    if not 0.0 < copy_share < 1.0:
        raise ValueError(f"copy_share must lie strictly between 0 and 1, got {copy_share}")
    return weighted_copies([x, x_copy], y, w, [1.0 - copy_share, copy_share])


def weighted_copies(
    xs: list[np.ndarray], y: np.ndarray, w: np.ndarray, shares: list[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same rows from several copies of the stays, copy i's at ``shares[i]`` of each row's weight
    (the shares sum to 1, so every stay keeps its total weight; ``~augmix<K>``: three, a third each)."""
    if len(xs) != len(shares) or min(shares) <= 0.0 or abs(sum(shares) - 1.0) > 1e-9:
        raise ValueError(f"need one positive share per copy, summing to 1: {len(xs)} copies, shares {shares}")
    return np.vstack(xs), np.tile(y, len(xs)), np.concatenate([w * s for s in shares])


GRAPH_NAME = "sepsis_diagnosis_trees"


def export_onnx(booster, n_features: int, path: str) -> None:  # type: ignore[no-untyped-def]
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    onx = convert_lightgbm(
        booster,
        initial_types=[("features", FloatTensorType([None, n_features]))],
        zipmap=False,
        target_opset=15,
    )
    _exact_float32_thresholds(onx, booster)
    # the converter names the graph with a fresh UUID: fixed, the same booster exports the same bytes
    # (a retrain at the same seed reproduces the manifest's sha256)
    onx.graph.name = GRAPH_NAME
    # and lists its opsets in a set's order, which differs between runs (PYTHONHASHSEED): by domain
    opsets = sorted((o.domain, o.version) for o in onx.opset_import)
    del onx.opset_import[:]
    for domain, version in opsets:
        onx.opset_import.add(domain=domain, version=version)
    for out in onx.graph.output:  # the converter pins the label output to batch 1; make it dynamic
        dim = out.type.tensor_type.shape.dim
        if len(dim):
            dim[0].dim_param = "N"
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())


def _exact_float32_thresholds(onx, booster) -> None:  # type: ignore[no-untyped-def]
    """ONNX trees compare float32 inputs with float32 thresholds; LightGBM's are doubles. Rounding a
    double threshold to the nearest float32 can land on a feature value above it (37.1099999 ->
    37.11) and send that row the other way. The largest float32 <= the double decides exactly as
    LightGBM does for every float32 input."""
    doubles: list[dict[tuple[int, float], float]] = []
    for info in booster.dump_model()["tree_info"]:
        found: dict[tuple[int, float], float] = {}
        stack = [info["tree_structure"]]
        while stack:
            node = stack.pop()
            if "leaf_value" in node:
                continue
            found[(int(node["split_feature"]), float(np.float32(node["threshold"])))] = float(node["threshold"])
            stack += [node["left_child"], node["right_child"]]
        doubles.append(found)
    node = next(n for n in onx.graph.node if n.op_type.startswith("TreeEnsemble"))
    attrs = {a.name: a for a in node.attribute}
    tree_ids, features = attrs["nodes_treeids"].ints, attrs["nodes_featureids"].ints
    modes, values = attrs["nodes_modes"].strings, attrs["nodes_values"].floats
    for i in range(len(values)):
        if modes[i] == b"LEAF":
            continue
        exact = doubles[tree_ids[i]][(features[i], float(np.float32(values[i])))]
        v = np.float32(exact)
        if float(v) > exact:
            v = np.nextafter(v, np.float32(-np.inf))
        values[i] = float(v)


_MISSING = {"None": 0, "Zero": 1, "NaN": 2}


def tree_table(booster) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """Flatten every tree into node arrays [n_trees, max_nodes] (leaves are nodes too)."""
    dump = booster.dump_model()
    trees = []
    for info in dump["tree_info"]:
        nodes: list[dict[str, Any]] = []

        def walk(node: dict[str, Any], nodes: list[dict[str, Any]] = nodes) -> int:
            i = len(nodes)
            nodes.append({})
            if "leaf_value" in node:
                nodes[i] = {"leaf": True, "value": node["leaf_value"]}
                return i
            assert node["decision_type"] == "<=", node["decision_type"]
            left = walk(node["left_child"], nodes)
            right = walk(node["right_child"], nodes)
            nodes[i] = {
                "leaf": False,
                "value": node["internal_value"],
                "feature": node["split_feature"],
                "threshold": node["threshold"],
                "default_left": node["default_left"],
                "missing": _MISSING[node["missing_type"]],
                "left": left,
                "right": right,
            }
            return i

        walk(info["tree_structure"])
        trees.append(nodes)
    n_max = max(len(t) for t in trees)
    shape = (len(trees), n_max)
    table = {
        "feature": np.zeros(shape, np.int32),
        "threshold": np.zeros(shape, np.float64),
        "default_left": np.zeros(shape, bool),
        "missing": np.zeros(shape, np.int8),
        "left": np.zeros(shape, np.int32),
        "right": np.zeros(shape, np.int32),
        "value": np.zeros(shape, np.float64),
        "leaf": np.ones(shape, bool),
    }
    for ti, nodes in enumerate(trees):
        for ni, n in enumerate(nodes):
            table["value"][ti, ni] = n["value"]
            table["leaf"][ti, ni] = n["leaf"]
            if n["leaf"]:
                table["left"][ti, ni] = table["right"][ti, ni] = ni
                continue
            for k in ("feature", "threshold", "default_left", "missing", "left", "right"):
                table[k][ti, ni] = n[k]
    depth = 0
    for nodes in trees:

        def d(i: int, nodes: list[dict[str, Any]] = nodes) -> int:
            n = nodes[i]
            return 0 if n["leaf"] else 1 + max(d(n["left"]), d(n["right"]))

        depth = max(depth, d(0))
    table["max_depth"] = np.array(depth)
    return table
