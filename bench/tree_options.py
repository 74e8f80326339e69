"""Per-row cost of the deployed tree model (ONNX TreeEnsembleClassifier) under other session
options, at batch 1 to 256: what was tried against the tree model's floor in ``batch_speedup``.

    python -m vigil.bench.tree_options     # JSON: {variant: {batch: µs per row, speedup_1_64}}

Inputs are random normal features (the model's input width): the floor of a 200-tree walk does
not depend much on which leaves are reached; ``vigil bench`` measures it on real features.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import onnxruntime as ort

from vigil.models.bundle import load_manifest
from vigil.models.stream_step import served_bundle_dir

BATCHES = (1, 8, 16, 64, 256)


def _session(path: str, threads: int = 1, spinning: bool = True, basic: bool = False) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    level = ort.GraphOptimizationLevel
    opts.graph_optimization_level = level.ORT_ENABLE_BASIC if basic else level.ORT_ENABLE_ALL
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def _us_per_row(session: ort.InferenceSession, x: np.ndarray, outputs: list[str] | None) -> float:
    """Median of five blocks of ≥ 80 ms."""
    session.run(outputs, {"features": x})
    blocks = []
    for _ in range(5):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 0.08 or n < 3:
            session.run(outputs, {"features": x})
            n += 1
        blocks.append((time.perf_counter() - t0) / (n * len(x)) * 1e6)
    return round(float(np.median(blocks)), 2)


def measure() -> dict[str, Any]:
    d = served_bundle_dir()
    path = str(d / load_manifest(d)["models"]["sepsis_diagnosis"]["file"])
    deployed = _session(path)
    width = deployed.get_inputs()[0].shape[1]
    x = np.random.default_rng(0).normal(size=(max(BATCHES), width)).astype(np.float32)
    probabilities = [deployed.get_outputs()[1].name]
    variants = {
        "1 thread (deployed)": (deployed, None),
        "1 thread, probabilities output only": (deployed, probabilities),
        "2 threads": (_session(path, threads=2), None),
        "2 threads, no spinning": (_session(path, threads=2, spinning=False), None),
        "1 thread, basic graph optimization": (_session(path, basic=True), None),
    }
    out: dict[str, Any] = {}
    for name, (session, outputs) in variants.items():
        row: dict[str, float] = {str(b): _us_per_row(session, x[:b], outputs) for b in BATCHES}
        row["speedup_1_64"] = round(row["1"] / row["64"], 2)
        out[name] = row
    return out


if __name__ == "__main__":
    print(json.dumps(measure()))
