"""Artifact integrity: a bundle's manifest pins the sha256 of every file; nothing unpinned is served."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vigil.schemas.errors import UserError

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"


class ArtifactIntegrityError(UserError):
    """A bundle that cannot be served as it is: a file missing or not at the sha256 its manifest pins,
    or inputs and graphs this version of the code does not serve. The operator's one line (the CLI),
    not a traceback; the worker serves rule scores instead only for a damaged *shipped* bundle."""


COPY_AGAIN = "copy the bundle again from the folder `vigil train` wrote"
OTHER_VERSION = "serve it with the Vigil version that trained it, or retrain it with this one (`vigil train`)"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_manifest(artifacts_dir: str | Path | None = None) -> dict[str, Any]:
    d = Path(artifacts_dir) if artifacts_dir else ARTIFACTS_DIR
    try:
        manifest = json.loads((d / "manifest.json").read_text())
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ArtifactIntegrityError(f"{d / 'manifest.json'}: not a bundle manifest ({exc}): {COPY_AGAIN}") from None
    if not isinstance(manifest, dict):
        raise ArtifactIntegrityError(f"{d / 'manifest.json'}: not a bundle manifest (not an object): {COPY_AGAIN}")
    return manifest


def pinned_file(manifest: Mapping[str, Any], artifacts_dir: Path, name: str) -> Path:
    """``artifacts_dir / name`` for a file the bundle opens, refused unless the manifest pins it
    (``files``): ``verify_artifacts`` checks the sha256 of the pinned files only, so a file opened by
    a name the manifest gives elsewhere but does not pin would be served unchecked."""
    if name not in manifest.get("files", {}):
        raise ArtifactIntegrityError(
            f"{name} in {artifacts_dir}: the bundle opens it but its manifest pins no sha256 for it: {COPY_AGAIN}"
        )
    return Path(artifacts_dir) / name


def verify_artifacts(manifest: Mapping[str, Any], artifacts_dir: Path) -> None:
    for name, meta in manifest["files"].items():
        path = artifacts_dir / name
        if not path.exists():
            raise ArtifactIntegrityError(f"{name}: missing from {artifacts_dir}: {COPY_AGAIN}")
        digest = sha256_file(path)
        if digest != meta["sha256"]:
            raise ArtifactIntegrityError(
                f"{name} in {artifacts_dir}: sha256 {digest[:12]}... != manifest {meta['sha256'][:12]}...: {COPY_AGAIN}"
            )
