from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from vigil.models.features import FEATURE_NAMES, N_DYNAMIC
from vigil.models.registry import (
    ARTIFACTS_DIR,
    ArtifactIntegrityError,
    bucket_size,
    load_bundle,
    load_manifest,
    tree_contributions,
)
from vigil.models.session import choose_providers
from vigil.schemas.scores import ModelScore

ART = Path(os.environ.get("VIGIL_TEST_ARTIFACTS", ARTIFACTS_DIR))
STATIC = {"Age": 70.0, "Gender": 0.0}


@pytest.fixture(scope="module")
def bundle():  # type: ignore[no-untyped-def]
    return load_bundle(ART, intra_op_threads=1)


def test_choose_providers() -> None:
    assert choose_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    both = ["AzureExecutionProvider", "CPUExecutionProvider", "CUDAExecutionProvider"]
    assert choose_providers(both) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(both, prefer_gpu=False) == ["CPUExecutionProvider"]
    assert choose_providers([]) == ["CPUExecutionProvider"]


def test_bucket_size() -> None:
    assert [bucket_size(n, (1, 8, 32)) for n in (1, 2, 8, 9, 32)] == [1, 8, 8, 32, 32]


def test_manifest_version_thresholds_hashes() -> None:
    m = load_manifest(ART)
    assert m["version"]
    assert m["feature_names"] == FEATURE_NAMES
    for name in ("sepsis_diagnosis", "deterioration", "combined"):
        assert 0.0 < m["models"][name]["threshold"] < 1.0
        assert m["models"][name]["version"]
    for meta in m["files"].values():
        assert len(meta["sha256"]) == 64
    total = sum((ART / f).stat().st_size for f in m["files"])
    assert total < 8_000_000


def test_hash_mismatch_raises(tmp_path: Path) -> None:
    copy = tmp_path / "artifacts"
    shutil.copytree(ART, copy)
    onnx = copy / "deterioration.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    with pytest.raises(ArtifactIntegrityError):
        load_bundle(copy)


def test_feature_list_mismatch_raises(tmp_path: Path) -> None:
    copy = tmp_path / "artifacts"
    shutil.copytree(ART, copy)
    m = json.loads((copy / "manifest.json").read_text())
    m["feature_names"] = m["feature_names"][:-1]
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactIntegrityError):
        load_bundle(copy)


def test_diagnosis_onnx_matches_native_reference(bundle) -> None:  # type: ignore[no-untyped-def]
    ref = np.load(ART / "sepsis_diagnosis_reference.npz")
    p = bundle.diagnosis_probability(ref["features"])
    # ONNX TreeEnsemble compares in float32; LightGBM in float64
    assert np.abs(p - ref["probability"]).max() < 2e-3
    contrib, bias = tree_contributions(bundle.tree_table, ref["features"])
    np.testing.assert_allclose(contrib.sum(1) + bias, ref["raw"], atol=1e-9)


def test_diagnosis_onnx_matches_lightgbm_live(bundle) -> None:  # type: ignore[no-untyped-def]
    lgb = pytest.importorskip("lightgbm")
    booster = lgb.Booster(model_file=str(ART / "sepsis_diagnosis.lgbm.txt"))
    ref = np.load(ART / "sepsis_diagnosis_reference.npz")["features"]
    assert np.abs(bundle.diagnosis_probability(ref) - booster.predict(ref)).max() < 2e-3


def test_gru_onnx_matches_torch_reference(bundle) -> None:  # type: ignore[no-untyped-def]
    ref = np.load(ART / "deterioration_reference.npz")
    p = bundle.deterioration_probability(ref["sequence"])
    assert np.abs(p - ref["probability"]).max() < 1e-5
    # dynamic batch axis: batch 1 gives the same numbers
    assert np.abs(bundle.deterioration_probability(ref["sequence"][:1]) - ref["probability"][:1]).max() < 1e-5


def test_score_batch(bundle, stay_matrix: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    windows = [stay_matrix[: t + 1][-48:] for t in (0, 10, 60, 79)]
    scores = bundle.score(windows, [STATIC] * 4, explain="all")
    assert len(scores) == 4
    for s in scores:
        assert [m.model for m in s.scores] == ["sepsis_diagnosis", "deterioration", "combined"]
        for m in s.scores:
            assert isinstance(m, ModelScore)
            assert 0.0 <= m.probability <= 1.0
            assert m.positive == (m.probability >= m.threshold)
            assert len(m.top_features) <= 5
        assert s.scores[0].top_features
        assert s.scores[1].top_features
        comb = s.by_model("combined")
        assert comb.probability == pytest.approx(0.5 * (s.scores[0].probability + s.scores[1].probability), abs=1e-6)


def test_score_equals_offline_stay_risks(bundle, stay_matrix: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    risk = bundle.stay_risks([stay_matrix], [STATIC])[0]
    for t in (0, 30, 79):
        s = bundle.score([stay_matrix[max(0, t - 47) : t + 1]], [STATIC], explain="none")[0]
        assert s.by_model("combined").probability == pytest.approx(float(risk.combined[t]), abs=1e-6)
    # bucket padding does not change results
    wins = [stay_matrix[: t + 1] for t in range(9)]
    a = bundle.score(wins, [STATIC] * 9, buckets=(1, 8, 32), explain="none")
    b = bundle.score(wins, [STATIC] * 9, buckets=None, explain="none")
    assert [x.scores[2].probability for x in a] == pytest.approx([x.scores[2].probability for x in b], abs=1e-6)


def test_empty_window_rejected(bundle) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        bundle.score([np.zeros((0, N_DYNAMIC), np.float32)], [STATIC])
