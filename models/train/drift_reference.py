"""The training reference beside the artifacts (``training_reference.json``) that the stream's drift
check compares live inputs with (issue 12 item 6; ``models.drift``): per variable the share of hours
measured; per top feature its deciles, the share of hours missing it and the share of hours in each
bin between the deciles (discrete features tie deciles: shares computed from the data, not assumed).

Regenerate for a trained bundle without retraining (no PyTorch needed):
``.venv/bin/python -m vigil.models.train.drift_reference [--out models/artifacts/stepping]``
(features from the cohort cache, the bundle's own top features, then re-pins the manifest).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from vigil.models.drift import NULL_PATIENTS, REFERENCE_FILE, DriftReference, bin_values, null_max_psi
from vigil.schemas.codes import DYNAMIC_CODES


def write_training_reference(
    path: Path, matrix: np.ndarray, x: np.ndarray, top_features: list[str], offsets: np.ndarray | None = None
) -> None:
    """Per-variable measurement rate (share of hours measured), deciles and bin shares of the top
    features; with the stays' ``offsets``, the null table of the largest PSI of training wards."""
    from vigil.models.stay_features import TREE_FEATURES

    rates = (~np.isnan(matrix)).mean(0)
    index = {n: i for i, n in enumerate(TREE_FEATURES)}
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(len(x), min(len(x), 200_000), replace=False))
    xs = np.asarray(x[sample])
    quantiles = {}
    for name in top_features:
        full = xs[:, index[name]].astype(np.float64)
        col = full[~np.isnan(full)]
        deciles = np.quantile(col, np.linspace(0, 1, 11)) if len(col) else np.zeros(0)
        edges = np.unique(np.round(deciles[1:-1], 5))
        shares = np.bincount(bin_values(full, edges), minlength=len(edges) + 2) / max(len(full), 1)
        quantiles[name] = {
            "deciles": [round(float(v), 5) for v in deciles],
            "missing_share": round(1 - len(col) / len(xs), 4),
            "edges": edges.tolist(),
            "shares": [round(float(v), 6) for v in shares],
        }
    ref = {
        "source": "PhysioNet/CinC 2019 training set A, every hour",
        "measurement_rate_per_hour": {c: round(float(r), 5) for c, r in zip(DYNAMIC_CODES, rates, strict=True)},
        "top_feature_quantiles": quantiles,
    }
    if offsets is not None:
        reference = DriftReference.from_json(json.dumps(ref))
        columns = np.stack([np.asarray(x[:, index[f.name]]) for f in reference.features], -1)
        q99 = null_max_psi(reference, ~np.isnan(matrix), columns, offsets)
        ref["null_max_psi"] = {
            "patients": list(NULL_PATIENTS),
            "q99": [round(float(v), 4) for v in q99],
            "window_hours": 2000,
            "draws": 1000,
        }
    path.write_text(json.dumps(ref, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    from vigil.models.bundle import STEPPING_DIR
    from vigil.models.train.cohort_features import cohort_matrices
    from vigil.models.train.data import load_cohort

    ap = argparse.ArgumentParser(description="Rewrite a bundle's training reference and re-pin its manifest")
    ap.add_argument("--out", type=Path, default=STEPPING_DIR)
    args = ap.parse_args(argv)
    path = args.out / REFERENCE_FILE
    top = list(json.loads(path.read_text())["top_feature_quantiles"])
    cohort = load_cohort()
    x, _ = cohort_matrices(cohort, "setA")
    write_training_reference(path, cohort.matrix, x, top, cohort.offsets)
    manifest = json.loads((args.out / "manifest.json").read_text())
    blob = path.read_bytes()
    manifest["files"][REFERENCE_FILE].update(sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob))
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {path} ({len(top)} features) and re-pinned it in the manifest")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
