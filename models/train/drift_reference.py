"""The training reference beside the artifacts (``training_reference.json``) that the stream's drift
check compares live inputs with (issue 12 item 6; ``models.drift``): per variable the share of hours
measured; per top feature its deciles, the share of hours missing it and the share of hours in each
bin between the deciles (discrete features tie deciles: shares computed from the data, not assumed).

Regenerate for a trained bundle without retraining (no PyTorch needed):
``.venv/bin/python -m vigil.models.train.drift_reference [--out models/artifacts/stepping]``
(features from the cohort cache, the bundle's own top features, then re-pins the manifest);
``--check`` measures how often wards of set-A stays are called drifted, as they are and with labs thinned.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from vigil.models.drift import NULL_HOURS, NULL_PATIENTS, REFERENCE_FILE, DriftReference, bin_values, null_max_psi
from vigil.schemas.codes import DYNAMIC_CODES

NULL_DRAWS = 1000  # wards drawn per cell of the null table: its 99th percentile rests on the top 10


def write_training_reference(
    path: Path, matrix: np.ndarray, x: np.ndarray, top_features: list[str], offsets: np.ndarray | None = None
) -> None:
    """Per-variable measurement rate (share of hours measured), deciles and bin shares of the top
    features; with the stays' ``offsets``, the null table of the largest PSI of training wards by
    window's hours and ward size (``models.drift.null_max_psi``)."""
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
        q99 = null_max_psi(reference, ~np.isnan(matrix), columns, offsets, NULL_HOURS, NULL_DRAWS)
        ref["null_max_psi"] = {
            "patients": list(NULL_PATIENTS),
            "hours": list(NULL_HOURS),
            "q99": [[round(float(v), 4) for v in row] for row in q99],  # a row per window's hours
            "draws": NULL_DRAWS,
        }
    path.write_text(json.dumps(ref, indent=2) + "\n")


def check(reference_path: Path, trials: int = 10, seed: int = 1) -> dict[str, dict[str, int]]:
    """How often wards of set-A stays are called drifted, as they are and with labs thinned
    (``models.shift.thin_labs``): ``{"<patients> patients": {"set A": k, "labs 0.5": k, "labs 0.2": k}}``
    out of ``trials`` wards each (a ward: that many stays, 2000 hours shared between them)."""
    from vigil.models.drift import DriftMonitor
    from vigil.models.shift import thin_labs
    from vigil.models.stay_features import TREE_FEATURES
    from vigil.models.stepping import stay_inputs
    from vigil.models.train.data import load_cohort_anchored

    reference = DriftReference.load(reference_path)
    manifest = json.loads((reference_path.parent / "manifest.json").read_text())
    cohort = load_cohort_anchored(manifest.get("hour_zero", "first-row"))
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, int]] = {}
    for size in (20, 40, 80):
        row = out.setdefault(f"{size} patients", {})
        for keep in (None, 0.5, 0.2):
            flagged = 0
            for _ in range(trials):
                monitor = DriftMonitor.for_inputs(reference, DYNAMIC_CODES, TREE_FEATURES, min_hours=50)
                per = max(1, 2000 // size)
                for p in rng.choice(len(cohort.lengths), size, replace=False).tolist():
                    m, static, _ = cohort.stay(p)
                    m = thin_labs(m, keep, rng) if keep else m
                    a = int(rng.integers(0, max(1, len(m) - per + 1)))
                    feats = stay_inputs(m, static).tree_features(np.arange(len(m)), static)[a : a + per]
                    monitor.observe(["W"] * len(feats), m[a : a + per], feats, np.full(len(feats), p))
                flagged += monitor.reports()[0].drifted
            row["set A" if keep is None else f"labs {keep}"] = flagged
    return out


def main(argv: list[str] | None = None) -> int:
    from vigil.models.bundle import STEPPING_DIR
    from vigil.models.train.cohort_features import cohort_matrices
    from vigil.models.train.data import load_cohort_anchored

    ap = argparse.ArgumentParser(description="Rewrite a bundle's training reference and re-pin its manifest")
    ap.add_argument("--out", type=Path, default=STEPPING_DIR)
    ap.add_argument("--check", action="store_true", help="only measure how often wards are called drifted")
    args = ap.parse_args(argv)
    path = args.out / REFERENCE_FILE
    if args.check:
        print(json.dumps(check(path)))
        return 0
    top = list(json.loads(path.read_text())["top_feature_quantiles"])
    manifest = json.loads((args.out / "manifest.json").read_text())
    # the hours the bundle was trained on: from each stay's first measurement since 2.7 (models.hour_zero)
    cohort = load_cohort_anchored(manifest.get("hour_zero", "first-row"))
    x, _ = cohort_matrices(cohort, "setA")
    write_training_reference(path, cohort.matrix, x, top, cohort.offsets)
    blob = path.read_bytes()
    manifest["files"][REFERENCE_FILE].update(sha256=hashlib.sha256(blob).hexdigest(), bytes=len(blob))
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {path} ({len(top)} features) and re-pinned it in the manifest")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
