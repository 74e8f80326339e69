"""The tree model's per-feature contributions as an ONNX graph, so the worker explains a score in
onnxruntime's C++ tree walk instead of a numpy walk (issue 13: the numpy walk was a third of the
stream's scoring time at the batch sizes a live ward sends).

Saabas contributions are fixed per leaf: reaching a leaf adds, for every split on its path,
``value(child) - value(split)`` to the split's feature (``models.tree_explain`` walks them per row).
So a ``TreeEnsembleRegressor`` with the served classifier's nodes, unchanged, and each leaf's
path contributions as its target weights (one target per feature) returns them for a whole batch
in one call, and follows exactly the splits the served probability follows (same thresholds, same
missing-value branches). The splits' values come from the LightGBM tree table
(``trees.tree_table``), matched to the ONNX nodes by walking both trees in step.

    .venv-train/bin/python -m vigil.models.train.contrib_graph [--out models/artifacts/stepping]

writes ``sepsis_diagnosis_contrib.onnx`` beside the tree model and pins it in the manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

CONTRIB_FILE = "sepsis_diagnosis_contrib.onnx"
INPUT = "features"
OUTPUT = "contributions"
_F32_MAX = float(np.finfo(np.float32).max)
_NODE_ATTRS = (
    "nodes_falsenodeids",
    "nodes_featureids",
    "nodes_hitrates",
    "nodes_missing_value_tracks_true",
    "nodes_modes",
    "nodes_nodeids",
    "nodes_treeids",
    "nodes_truenodeids",
    "nodes_values",
)


def leaf_targets(attrs: Mapping[str, Any], table: Mapping[str, np.ndarray]) -> list[tuple[int, int, int, float]]:
    """(tree id, ONNX leaf node id, feature, contribution) for every non-zero path contribution,
    from the classifier's node attributes and the tree table; raises if the two trees differ."""
    nodes: dict[tuple[int, int], int] = {
        (t, n): i for i, (t, n) in enumerate(zip(attrs["nodes_treeids"], attrs["nodes_nodeids"], strict=True))
    }
    leaf_weight = {
        (t, n): w
        for t, n, w in zip(attrs["class_treeids"], attrs["class_nodeids"], attrs["class_weights"], strict=True)
    }
    split = [m != b"LEAF" for m in attrs["nodes_modes"]]
    trees = attrs["nodes_treeids"]
    children = {(trees[i], attrs["nodes_truenodeids"][i]) for i in range(len(split)) if split[i]}
    children |= {(trees[i], attrs["nodes_falsenodeids"][i]) for i in range(len(split)) if split[i]}
    roots = {t: n for (t, n) in nodes if (t, n) not in children}  # one per tree
    out: list[tuple[int, int, int, float]] = []
    value, feature, threshold = table["value"], table["feature"], table["threshold"]
    for t, root in sorted(roots.items()):
        stack: list[tuple[int, int, dict[int, float]]] = [(root, 0, {})]
        while stack:
            onnx_id, k, acc = stack.pop()
            i = nodes[(t, onnx_id)]
            if attrs["nodes_modes"][i] == b"LEAF":
                if not table["leaf"][t, k]:
                    raise ValueError(f"tree {t}: ONNX leaf {onnx_id} is a split in the table")
                if abs(leaf_weight[(t, onnx_id)] - value[t, k]) > 1e-5 * max(1.0, abs(value[t, k])):
                    raise ValueError(f"tree {t}: leaf {onnx_id} weight differs from the table")
                entries = [(t, onnx_id, f, c) for f, c in sorted(acc.items()) if c != 0.0]
                out += entries or [(t, onnx_id, 0, 0.0)]  # every leaf carries a weight
                continue
            if attrs["nodes_modes"][i] != b"BRANCH_LEQ" or table["leaf"][t, k]:
                raise ValueError(f"tree {t}: node {onnx_id} is not a <= split in both trees")
            f = int(feature[t, k])
            thr = float(np.clip(threshold[t, k], -_F32_MAX, _F32_MAX))  # LightGBM writes 1e300 for "all"
            if attrs["nodes_featureids"][i] != f or abs(attrs["nodes_values"][i] - thr) > 1e-4 * max(1.0, abs(thr)):
                raise ValueError(f"tree {t}: node {onnx_id} splits on another feature or threshold")
            for onnx_child, child in (
                (attrs["nodes_truenodeids"][i], int(table["left"][t, k])),
                (attrs["nodes_falsenodeids"][i], int(table["right"][t, k])),
            ):
                step = dict(acc)
                step[f] = step.get(f, 0.0) + float(value[t, child] - value[t, k])
                stack.append((onnx_child, child, step))
    return out


def contribution_graph(tree_model: Any, table: Mapping[str, np.ndarray]) -> Any:
    """The ONNX model computing [B, F] contributions (float32 log-odds) of the tree classifier."""
    from onnx import TensorProto, helper

    clf = next(n for n in tree_model.graph.node if n.op_type == "TreeEnsembleClassifier")
    attrs = {a.name: helper.get_attribute_value(a) for a in clf.attribute}
    n_features = int(tree_model.graph.input[0].type.tensor_type.shape.dim[1].dim_value)
    targets = leaf_targets(attrs, table)
    node = helper.make_node(
        "TreeEnsembleRegressor",
        [INPUT],
        [OUTPUT],
        domain="ai.onnx.ml",
        n_targets=n_features,
        aggregate_function="SUM",
        post_transform="NONE",
        target_treeids=[t for t, _, _, _ in targets],
        target_nodeids=[n for _, n, _, _ in targets],
        target_ids=[f for _, _, f, _ in targets],
        target_weights=[c for _, _, _, c in targets],
        **{k: attrs[k] for k in _NODE_ATTRS if k in attrs},
    )
    graph = helper.make_graph(
        [node],
        "sepsis_diagnosis_contributions",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, [None, n_features])],
    )
    opsets = [helper.make_opsetid("", 9), helper.make_opsetid("ai.onnx.ml", 1)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="vigil.models.train.contrib_graph")
    model.ir_version = tree_model.ir_version
    return model


def write_contribution_graph(tree_onnx: Path, table_npz: Path, out: Path) -> None:
    import onnx

    with np.load(table_npz) as z:
        table = {k: z[k] for k in z.files}
    model = contribution_graph(onnx.load(str(tree_onnx)), table)
    onnx.checker.check_model(model)
    out.write_bytes(model.SerializeToString())


def main(argv: list[str] | None = None) -> int:
    from vigil.models.bundle import STEPPING_DIR

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=STEPPING_DIR)
    args = ap.parse_args(argv)
    manifest = json.loads((args.out / "manifest.json").read_text())
    meta = manifest["models"]["sepsis_diagnosis"]
    write_contribution_graph(args.out / meta["file"], args.out / meta["contributions_file"], args.out / CONTRIB_FILE)
    meta["contributions_graph"] = CONTRIB_FILE
    blob = (args.out / CONTRIB_FILE).read_bytes()
    manifest["files"][CONTRIB_FILE] = {"sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)}
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {CONTRIB_FILE} ({len(blob):,} bytes) and pinned it in {args.out / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
