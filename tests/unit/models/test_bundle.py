"""The stepping bundle: ONNX equals the native models, the one-step graph equals the full-sequence
graph, the stream form equals offline prediction, and explanations lead with physiology."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from synthetic import synthetic_stay

from vigil.models.bundle import MEASUREMENT_PATTERN, STEPPING_DIR, load_stepping_bundle, sequence_columns
from vigil.models.bundle_check import reference_checks, stream_checks
from vigil.models.integrity import ArtifactIntegrityError, load_manifest
from vigil.models.stay_features import MISSINGNESS_FEATURES, SEQUENCE_INPUTS, SEQUENCE_INPUTS_V1
from vigil.models.step_session import StepSession
from vigil.models.stepping import StayCarry
from vigil.models.stream_step import StepOutcome, StepRequest, advance
from vigil.schemas.codes import DYNAMIC_CODES

ART = Path(os.environ.get("VIGIL_TEST_STEPPING_ARTIFACTS", STEPPING_DIR))
STATIC = {"Age": 64.0, "Gender": 1.0}


@pytest.fixture(scope="module")
def bundle():  # type: ignore[no-untyped-def]
    return load_stepping_bundle(ART, intra_op_threads=1)


def test_manifest_pins_every_file(tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(ART, copy)
    (copy / "sepsis_diagnosis.onnx").write_bytes((copy / "sepsis_diagnosis.onnx").read_bytes() + b"\0")
    with pytest.raises(ArtifactIntegrityError):
        load_stepping_bundle(copy)


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("deterioration", "window_file"),
        ("deterioration", "file"),
        ("sepsis_diagnosis", "file"),
        ("sepsis_diagnosis", "contributions_file"),
        ("sepsis_diagnosis", "contributions_graph"),
    ],
)
def test_a_file_the_bundle_opens_must_be_pinned(tmp_path: Path, model: str, key: str) -> None:
    """verify_artifacts checks the files the manifest pins; one the manifest names elsewhere but does
    not pin is refused, not served unchecked (a tampered scored-hours graph with its pin removed was)."""
    import json
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(ART, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    name = manifest["models"][model][key]
    (copy / name).write_bytes((copy / name).read_bytes() + b"\0")  # tampered, and its pin taken out
    del manifest["files"][name]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactIntegrityError, match=f"{name}.*pins no sha256"):
        load_stepping_bundle(copy, intra_op_threads=1, prefer_gpu=False)


@pytest.mark.parametrize(("key", "value"), [("kind", "lstm-step"), ("hidden", 7)])
def test_a_sequence_model_the_code_cannot_serve_is_refused(tmp_path: Path, key: str, value: object) -> None:
    """An unknown kind of deterioration model, or a state size the one-step graph does not take,
    stops the bundle from opening instead of scoring with the wrong stepping."""
    import json
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(ART, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["models"]["deterioration"][key] = value
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactIntegrityError, match="kind|state"):
        load_stepping_bundle(copy)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda names: [*names[:-1], "Lactate_wobble"], "does not compute"),  # a name the code lacks
        (lambda names: names[::-1], "order"),  # the right names, another order: the graph would misread
        (lambda names: names[:-1], "does not read"),  # fewer than the graph reads
    ],
)
def test_sequence_inputs_the_graph_does_not_read_are_refused(tmp_path: Path, change, match: str) -> None:  # type: ignore[no-untyped-def]
    """The manifest's ``sequence_inputs`` say which inputs the deterioration graph reads, in order:
    names the code cannot compute, another order or another count stop the bundle from opening."""
    import json
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(ART, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["sequence_inputs"] = change(manifest["sequence_inputs"])
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactIntegrityError, match=match):
        load_stepping_bundle(copy)


def test_sequence_columns_select_a_bundles_inputs() -> None:
    assert sequence_columns(SEQUENCE_INPUTS) is None
    cols = sequence_columns(SEQUENCE_INPUTS_V1)
    assert cols is not None and [SEQUENCE_INPUTS[i] for i in cols] == SEQUENCE_INPUTS_V1


def test_graphs_equal_their_training_references(bundle) -> None:  # type: ignore[no-untyped-def]
    """What `vigil bundle check` checks first: the tree graph against native LightGBM, the one-step
    graph stepped and the scored-hours graph against PyTorch, on the reference arrays of the bundle."""
    checks = reference_checks(bundle)
    assert [c.name for c in checks] == [
        "trees against LightGBM",
        "deterioration stepped against the training framework",
        "deterioration windows against the training framework",
    ]
    assert all(c.ok and c.rows > 0 for c in checks), [c.summary() for c in checks]


def test_full_sequence_graph_equals_torch(bundle) -> None:  # type: ignore[no-untyped-def]
    from vigil.models.session import create_session

    with np.load(ART / "deterioration_reference.npz") as ref:
        seq, lengths, probs = ref["sequence"], ref["lengths"], ref["probability"]
    bounds = np.r_[0, np.cumsum(lengths)]
    assert max(lengths) > 48
    full = create_session(ART / load_manifest(ART)["models"]["deterioration"]["sequence_file"], intra_op_threads=1)
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        out = full.run(None, {"sequence": seq[a:b][None].astype(np.float32)})[0][0]
        np.testing.assert_allclose(out, probs[a:b], atol=1e-5)


def newest(bundle, requests: list[StepRequest]) -> list[StepOutcome]:  # type: ignore[no-untyped-def]
    """The worker's call: every patient of a batch at its newest hour (``stream_step.advance``)."""
    return advance(bundle, StepSession(bundle.step_session, bundle.hidden), requests)


def test_stream_form_equals_offline(bundle) -> None:  # type: ignore[no-untyped-def]
    """The stream's hour-by-hour form (``bundle_check.stream_checks``, which `vigil bundle check`
    runs: every hour advanced as the worker does, the carry through its bytes) equals offline scoring
    on stays of 7 to 100 hours, and the served flag follows the served threshold."""
    rng = np.random.default_rng(11)
    stays = [synthetic_stay(rng, n)[:, : len(DYNAMIC_CODES)].astype(np.float32) for n in (7, 60, 100)]
    checks = stream_checks(bundle, stays, [STATIC] * 3)
    assert all(c.ok for c in checks), [c.summary() for c in checks]
    assert checks[0].rows == sum(2 * len(m) - 1 for m in stays)  # every final and newest score
    for out in newest(bundle, [StepRequest(StayCarry(), m, len(m) - 1, STATIC, None) for m in stays]):
        by = {s.model: s for s in out.current.models}
        assert by["combined"].positive == (by["combined"].probability >= bundle.combined_threshold)


def test_explanations_lead_with_physiology(bundle) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    stays = [synthetic_stay(rng, 50)[:, : len(DYNAMIC_CODES)].astype(np.float32) for _ in range(8)]
    outcomes = newest(bundle, [StepRequest(StayCarry(), m, 49, STATIC, None) for m in stays])
    for patient in (out.current.models for out in outcomes):
        names = [f.feature for f in patient[0].top_features]
        assert names and not set(names) & MISSINGNESS_FEATURES
        assert MEASUREMENT_PATTERN not in names[:-1]  # physiology first, the grouped habits last
        assert len([n for n in names if n != MEASUREMENT_PATTERN]) >= 3


def test_contribution_graph_equals_the_walk_and_sums_to_the_served_log_odds(bundle) -> None:  # type: ignore[no-untyped-def]
    """The worker explains with the ONNX contribution graph: the same figures as the numpy Saabas walk
    over the tree table, and (with the trees' bias) the log-odds of the probability actually served."""
    from vigil.models.tree_explain import tree_contributions

    assert bundle.contrib_session is not None, "the shipped bundle carries its contribution graph"
    with np.load(ART / "sepsis_diagnosis_reference.npz") as ref:
        x = ref["features"].astype(np.float32)
    x[::7, ::5] = np.nan  # missing values take the same branches in both
    graph = bundle.contributions(x)
    walk, bias = tree_contributions(bundle.tree_table, x)
    np.testing.assert_allclose(graph, walk, atol=2e-6)
    p = bundle.tree_probability(x).astype(np.float64)
    np.testing.assert_allclose(graph.sum(1) + bias, np.log(p / (1 - p)), atol=1e-4)


def test_contribution_graph_refuses_a_table_of_other_trees() -> None:
    """Built only when the LightGBM table and the ONNX trees are the same trees, split for split."""
    import onnx
    from onnx import helper

    from vigil.models.train.contrib_graph import leaf_targets

    model = onnx.load(str(ART / "sepsis_diagnosis.onnx"))
    clf = next(n for n in model.graph.node if n.op_type == "TreeEnsembleClassifier")
    attrs = {a.name: helper.get_attribute_value(a) for a in clf.attribute}
    with np.load(ART / "sepsis_diagnosis_trees.npz") as z:
        table = {k: z[k].copy() for k in z.files}
    assert len(leaf_targets(attrs, table)) >= int(table["leaf"].sum()) // 2
    table["feature"][3, 0] += 1  # tree 3's root splits on another feature
    with pytest.raises(ValueError, match="tree 3"):
        leaf_targets(attrs, table)
