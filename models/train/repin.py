"""Re-export the stepping bundle's tree model from its native LightGBM file and re-pin every sha256
in the manifest (after a change to the ONNX export, without retraining).

    .venv-train/bin/python -m vigil.models.train.repin [--out models/artifacts/stepping]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from vigil.models.bundle import STEPPING_DIR
from vigil.models.train import trees


def main(argv: list[str] | None = None) -> int:
    import lightgbm as lgb

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=STEPPING_DIR)
    args = ap.parse_args(argv)
    manifest = json.loads((args.out / "manifest.json").read_text())
    booster = lgb.Booster(model_file=str(args.out / "sepsis_diagnosis.lgbm.txt"))
    trees.export_onnx(booster, booster.num_feature(), str(args.out / manifest["models"]["sepsis_diagnosis"]["file"]))
    for name, meta in manifest["files"].items():
        blob = (args.out / name).read_bytes()
        meta["sha256"], meta["bytes"] = hashlib.sha256(blob).hexdigest(), len(blob)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"re-pinned {len(manifest['files'])} files in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
