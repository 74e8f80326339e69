"""Reference arrays beside the artifacts: serving tests compare ONNX with the native models without
LightGBM or PyTorch (the stream's drift reference: ``models.train.drift_reference``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch


def write_references(
    out: Path, booster: Any, sequence_model: Any, x: np.ndarray, s: np.ndarray, offsets: np.ndarray, seed: int
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
        probs = [torch.sigmoid(sequence_model(torch.from_numpy(q[None]))).numpy()[0] for q in seqs]
    np.savez_compressed(
        out / "deterioration_reference.npz",
        sequence=np.concatenate(seqs),
        lengths=np.array([len(q) for q in seqs]),
        probability=np.concatenate(probs),
    )
