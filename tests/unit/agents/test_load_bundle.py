"""Which bundle a worker serves (``agents.runtime._load_bundle``): the shipped one, or the operator's
``VIGIL_BUNDLE_DIR``. A damaged shipped bundle leaves the worker on rule scores, loudly; a bundle the
operator named is served or the worker stops with one line, never rule scores in its place."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vigil.agents import runtime
from vigil.infra import metrics
from vigil.infra.settings import Settings
from vigil.models.bundle import STEPPING_DIR
from vigil.models.integrity import ArtifactIntegrityError
from vigil.models.stream_step import BundleDirError
from vigil.schemas.errors import UserError


def use(monkeypatch: pytest.MonkeyPatch, bundle_dir: Path | None) -> None:
    monkeypatch.setattr(runtime, "get_settings", lambda: Settings(bundle_dir=bundle_dir))


def refuse(*args: object, **kwargs: object) -> None:
    raise ArtifactIntegrityError("sepsis_diagnosis.onnx: sha256 0 != manifest 1")


def test_the_shipped_bundle_is_served_and_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, None)
    bundle = runtime._load_bundle()
    assert bundle is not None and bundle.artifacts_dir == STEPPING_DIR
    info = {s.labels["version"]: s.value for s in metrics.BUNDLE_INFO.collect()[0].samples}
    assert info.get(bundle.version) == 1.0


def test_a_damaged_shipped_bundle_leaves_rule_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    use(monkeypatch, None)
    monkeypatch.setattr(runtime, "load_served_bundle", refuse)
    assert runtime._load_bundle() is None


def test_the_operators_bundle_is_served_or_the_worker_stops(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(STEPPING_DIR, copy)
    use(monkeypatch, copy)
    bundle = runtime._load_bundle()
    assert bundle is not None and bundle.artifacts_dir == copy
    monkeypatch.setattr(runtime, "load_served_bundle", refuse)
    with pytest.raises(UserError, match="VIGIL_BUNDLE_DIR=.*does not load"):
        runtime._load_bundle()
    use(monkeypatch, tmp_path / "nothing-here")
    with pytest.raises(BundleDirError, match="holds no stepping bundle"):
        runtime._load_bundle()
