"""The tree graphs run on one onnxruntime thread on every path (``models.bundle.TREE_THREADS``). With
several, the sum over the trees was split between threads in an order that followed the batch's size:
an hour scored in a batch of 8 moved by ~3e-7, up to 6e-4 of combined risk across an isotonic step,
and the worker (one thread, small batches) differed from ``vigil predict`` (every core, 256 stays a
call) by that much."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vigil.models import offline
from vigil.models.bundle import STEPPING_DIR, load_stepping_bundle
from vigil.models.offline import list_psv, read_stay
from vigil.models.stepping import stay_inputs

SAMPLE = Path(__file__).parents[3] / "data" / "physionet2019-sample"


def sample_tree_features(n_stays: int) -> np.ndarray:
    """Every hour of the sample's first stays, as ``stay_risks`` computes their tree features."""
    feats = []
    for path in list_psv(SAMPLE)[:n_stays]:
        stay = read_stay(path)
        feats.append(stay_inputs(stay.matrix, stay.static).tree_features(np.arange(len(stay.matrix)), stay.static))
    return np.concatenate(feats)


def test_every_path_opens_the_trees_on_one_thread() -> None:
    predict = offline._open_bundle(None)  # `vigil predict`, `evaluate`, `replay`: every core for the rest
    named = offline._open_bundle(STEPPING_DIR)  # `--artifacts DIR`
    many = load_stepping_bundle(intra_op_threads=4, prefer_gpu=False)  # a worker's VIGIL_BATCH__INTRA_OP_THREADS
    for bundle in (predict, named, many):
        assert bundle.tree_session.get_session_options().intra_op_num_threads == 1
        assert bundle.contrib_session.get_session_options().intra_op_num_threads == 1
    assert many.step_session.get_session_options().intra_op_num_threads == 4  # the sequence graphs as asked


def test_an_hours_tree_probability_is_the_same_bits_alone_and_in_any_batch() -> None:
    bundle = offline._open_bundle(None)  # as `vigil predict` opens it
    feats = sample_tree_features(30)
    whole = bundle.tree_probability(feats)  # `vigil predict`: every hour of the stays in one call
    for size in (1, 2, 3, 5, 8, 16, 64):
        batched = np.concatenate([bundle.tree_probability(feats[i : i + size]) for i in range(0, len(feats), size)])
        np.testing.assert_array_equal(batched, whole, err_msg=f"batches of {size}")
