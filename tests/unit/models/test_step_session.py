"""The one-step ONNX graph run through IOBinding (host buffers on the CPU provider, device buffers
on CUDA) equals a numpy GRU and ``models.stepping.run_chains``; CUDA is used when present."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from vigil.models.session import create_session
from vigil.models.step_session import StepSession
from vigil.models.stepping import run_chains
from vigil.models.train.step_graph import GruWeights, step_model

N_IN, HIDDEN = 12, 8


@pytest.fixture(scope="module")
def weights() -> GruWeights:
    return GruWeights.random(N_IN, HIDDEN, seed=7)


@pytest.fixture(scope="module")
def step(weights: GruWeights) -> StepSession:
    model = step_model(weights, N_IN)
    return StepSession(create_session(model.SerializeToString(), prefer_gpu=False), HIDDEN)


def test_graph_step_equals_numpy_gru(weights: GruWeights, step: StepSession) -> None:
    r = np.random.default_rng(1)
    x, h = r.normal(size=(5, N_IN)).astype(np.float32), r.normal(size=(5, HIDDEN)).astype(np.float32)
    h_onnx, p_onnx = step(x, h)
    h_np, p_np = weights.step_numpy(x, h)
    np.testing.assert_allclose(h_onnx, h_np, atol=1e-5)
    np.testing.assert_allclose(p_onnx, p_np, atol=1e-6)


def test_iobinding_chains_equal_host_chains(step: StepSession) -> None:
    """Chains of unequal length (0 to 9 steps), some from a carried state: the bound path (states
    ping-pong in two buffers, prefixes bound by pointer) gives what plain stepping gives."""
    r = np.random.default_rng(2)
    chains: list[tuple[np.ndarray | None, np.ndarray]] = []
    for k in (3, 0, 9, 1, 1, 5, 0, 2):
        start = r.normal(size=HIDDEN).astype(np.float32) if k % 2 else None
        chains.append((start, r.normal(size=(k, N_IN)).astype(np.float32)))
    bound = step.run_chains(chains)
    plain = run_chains(step, chains, HIDDEN)
    for (start, x), got, (states, probs) in zip(chains, bound, plain, strict=True):
        want = states[-1] if len(x) else (np.zeros(HIDDEN, np.float32) if start is None else start)
        np.testing.assert_allclose(got.state, want, atol=1e-6)
        np.testing.assert_allclose(got.probabilities, probs, atol=1e-6)
        assert got.probabilities.shape == (len(x),)


def test_no_chains_and_empty_chains(step: StepSession) -> None:
    assert step.run_chains([]) == []
    (only,) = step.run_chains([(None, np.zeros((0, N_IN), np.float32))])
    np.testing.assert_array_equal(only.state, np.zeros(HIDDEN, np.float32))
    assert only.probabilities.shape == (0,)


def test_session_runs_on_cpu_here_and_says_so(step: StepSession) -> None:
    assert step.providers[-1] == "CPUExecutionProvider"
    assert step.device == ("cuda" if step.providers[0] == "CUDAExecutionProvider" else "cpu")


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in ort.get_available_providers(),
    reason="no CUDA execution provider here (install the gpu extra on a machine with an NVIDIA GPU)",
)
def test_cuda_provider_keeps_state_on_device_and_agrees_with_cpu(weights: GruWeights, step: StepSession) -> None:
    model = step_model(weights, N_IN).SerializeToString()
    gpu = StepSession(create_session(model, prefer_gpu=True), HIDDEN)
    assert gpu.providers[0] == "CUDAExecutionProvider" and gpu.device == "cuda"
    r = np.random.default_rng(3)
    chains = [(None, r.normal(size=(k, N_IN)).astype(np.float32)) for k in (48, 1, 2, 30) * 16]
    for got, want in zip(gpu.run_chains(chains), step.run_chains(chains), strict=True):
        np.testing.assert_allclose(got.state, want.state, atol=1e-4)
        np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-4)
