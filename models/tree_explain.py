"""Per-prediction contributions of a LightGBM ensemble from its flat tree table (numpy only)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def tree_contributions(table: Mapping[str, np.ndarray], x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Saabas path contributions of a LightGBM ensemble: (contrib [B, F], bias [B]) in log-odds.

    LightGBM's numerical decision: NaN is treated as 0 unless the split's missing type is NaN;
    missing-type Zero/NaN values go to the default child, others go left when x <= threshold.
    """
    n_trees, n_max = table["feature"].shape
    feat, thr = table["feature"].ravel(), table["threshold"].ravel()
    left, right = table["left"].ravel(), table["right"].ravel()
    value, leaf = table["value"].ravel(), table["leaf"].ravel()
    default_left, missing = table["default_left"].ravel(), table["missing"].ravel()
    b, n_feat = x.shape
    base = (np.arange(n_trees) * n_max)[None, :]
    node = np.broadcast_to(base, (b, n_trees)).copy()  # flat node index per (row, tree)
    rows = np.arange(b)[:, None] * n_feat
    xd = x.astype(np.float64).ravel()
    keys: list[np.ndarray] = []
    deltas: list[np.ndarray] = []
    for _ in range(int(table["max_depth"])):
        active = ~leaf[node]
        if not active.any():
            break
        node_a = node[active]
        f = feat[node_a]
        v = xd[(np.broadcast_to(rows, node.shape)[active]) + f]
        miss_t = missing[node_a]
        is_nan = np.isnan(v)
        v0 = np.where(is_nan & (miss_t != 2), 0.0, v)
        use_default = ((miss_t == 1) & (np.abs(v0) < 1e-35)) | ((miss_t == 2) & is_nan)
        go_left = np.where(use_default, default_left[node_a], v0 <= thr[node_a])
        child = np.where(go_left, left[node_a], right[node_a]) + (node_a // n_max) * n_max
        keys.append(np.broadcast_to(rows, node.shape)[active] + f)
        deltas.append(value[child] - value[node_a])
        node[active] = child
    contrib = np.bincount(
        np.concatenate(keys) if keys else np.zeros(0, np.int64),
        weights=np.concatenate(deltas) if deltas else None,
        minlength=b * n_feat,
    ).astype(np.float64)
    value = table["value"]
    bias = np.full(b, value[:, 0].sum())
    return contrib.reshape(b, n_feat), bias
