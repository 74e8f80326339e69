"""Reference arrays beside the artifacts: serving tests compare ONNX with the native models without
LightGBM or PyTorch, and the stream's drift check compares live inputs with the training data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vigil.schemas.codes import DYNAMIC_CODES


def write_references(
    out: Path, booster: Any, gru: Any, x: np.ndarray, s: np.ndarray, offsets: np.ndarray, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(x), 256, replace=False))
    feats = np.asarray(x[rows])
    np.savez_compressed(
        out / "sepsis_diagnosis_reference.npz",
        features=feats,
        raw=booster.predict(feats, raw_score=True),
        probability=booster.predict(feats),
    )
    lengths = np.diff(offsets)
    stays = rng.choice(np.nonzero(lengths > 60)[0], 6, replace=False)  # longer than the window
    seqs = [np.asarray(s[offsets[p] : offsets[p + 1]]) for p in stays]
    with torch.no_grad():
        probs = [torch.sigmoid(gru(torch.from_numpy(q[None]))).numpy()[0] for q in seqs]
    np.savez_compressed(
        out / "deterioration_reference.npz",
        sequence=np.concatenate(seqs),
        lengths=np.array([len(q) for q in seqs]),
        probability=np.concatenate(probs),
    )


def write_training_reference(path: Path, matrix: np.ndarray, x: np.ndarray, top_features: list[str]) -> None:
    """Per-variable measurement rate (share of hours measured) and deciles of the top features:
    what the stream's drift check (issue 12, item 6) compares live input with."""
    from vigil.models.stay_features import TREE_FEATURES

    rates = (~np.isnan(matrix)).mean(0)
    index = {n: i for i, n in enumerate(TREE_FEATURES)}
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(len(x), min(len(x), 200_000), replace=False))
    xs = np.asarray(x[sample])
    quantiles = {}
    for name in top_features:
        col = xs[:, index[name]]
        col = col[~np.isnan(col)]
        quantiles[name] = {
            "deciles": [round(float(v), 5) for v in np.quantile(col, np.linspace(0, 1, 11))] if len(col) else [],
            "missing_share": round(1 - len(col) / len(xs), 4),
        }
    ref = {
        "source": "PhysioNet/CinC 2019 training set A, every hour",
        "measurement_rate_per_hour": {c: round(float(r), 5) for c, r in zip(DYNAMIC_CODES, rates, strict=True)},
        "top_feature_quantiles": quantiles,
    }
    path.write_text(json.dumps(ref, indent=2) + "\n")
