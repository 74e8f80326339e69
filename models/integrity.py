"""Artifact integrity: a bundle's manifest pins the sha256 of every file; nothing unpinned is served."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vigil.schemas.errors import VigilError

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"


class ArtifactIntegrityError(VigilError):
    """A model file does not match the sha256 pinned in the manifest."""


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_manifest(artifacts_dir: str | Path | None = None) -> dict[str, Any]:
    d = Path(artifacts_dir) if artifacts_dir else ARTIFACTS_DIR
    return json.loads((d / "manifest.json").read_text())


def verify_artifacts(manifest: Mapping[str, Any], artifacts_dir: Path) -> None:
    for name, meta in manifest["files"].items():
        path = artifacts_dir / name
        if not path.exists():
            raise ArtifactIntegrityError(f"{name}: missing from {artifacts_dir}")
        digest = sha256_file(path)
        if digest != meta["sha256"]:
            raise ArtifactIntegrityError(f"{name}: sha256 {digest[:12]}... != manifest {meta['sha256'][:12]}...")
