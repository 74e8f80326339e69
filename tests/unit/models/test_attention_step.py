"""The attention encoder served through the one-step contract: its key/value-cache step equals the
full-sequence encoder at every hour, before and after the 48-hour window fills, in PyTorch and in the
exported ONNX graphs. Runs where the ``train`` extra (PyTorch) is installed; CI's serving venv checks
the shipped graphs against their reference arrays instead (``test_bundle.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _model(seed: int = 0):  # type: ignore[no-untyped-def]
    from vigil.models.train import attention

    torch.manual_seed(seed)
    return attention.WindowEncoder(12).eval()


def _stepped(step, x):  # type: ignore[no-untyped-def]
    from vigil.models.train import attention

    h = torch.zeros(x.shape[0], attention.state_size())
    out = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            h, p = step(x[:, t], h)
            out.append(p)
    return torch.stack(out, 1), h


def test_step_equals_the_full_sequence_encoder_across_the_window() -> None:
    from vigil.models.train import attention

    model = _model()
    x = torch.randn(3, 70, 12)
    with torch.no_grad():
        full = torch.sigmoid(model(x))
    stepped, h = _stepped(attention.AttentionStep(model), x)
    torch.testing.assert_close(stepped, full, atol=1e-6, rtol=0)
    assert float(h[0, -1]) == attention.CACHE  # the cache is full and stays so


def test_a_cache_longer_than_the_window_would_change_the_score() -> None:
    """Hours before t-47 must not reach hour t: the same last 48 hours after a different past score alike."""
    from vigil.models.train import attention

    model = _model(1)
    tail = torch.randn(1, 48, 12)
    a, _ = _stepped(attention.AttentionStep(model), torch.cat([torch.randn(1, 20, 12), tail], 1))
    b, _ = _stepped(attention.AttentionStep(model), torch.cat([torch.randn(1, 20, 12), tail], 1))
    torch.testing.assert_close(a[:, -1], b[:, -1], atol=1e-6, rtol=0)
    assert float((a[:, -2] - b[:, -2]).abs()) > 1e-6  # hour t-1's window still reaches the different past


def test_exported_graphs_equal_the_model_and_leave_it_in_eval_mode(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    from vigil.models.train import attention

    model = _model(2)
    attention.export_onnx(model, str(tmp_path / "step.onnx"), str(tmp_path / "seq.onnx"))
    assert not any(m.training for m in model.modules())  # the exporter restores its wrappers' mode
    x = torch.randn(2, 60, 12)
    with torch.no_grad():
        full = torch.sigmoid(model(x)).numpy()
    step = ort.InferenceSession(str(tmp_path / "step.onnx"))
    h = np.zeros((2, attention.state_size()), np.float32)
    got = []
    for t in range(60):
        h, p = step.run(None, {"x": x[:, t].numpy(), "h": h})
        got.append(p)
    np.testing.assert_allclose(np.stack(got, 1), full, atol=1e-6)
    seq = ort.InferenceSession(str(tmp_path / "seq.onnx"))
    np.testing.assert_allclose(seq.run(None, {"sequence": x.numpy()})[0], full, atol=1e-6)


def test_scored_hours_graph_equals_the_encoder_per_window(tmp_path: Path) -> None:
    """The stream's graph: patients with different numbers of hours and of scored hours in one batch,
    each scored hour from its own 48-hour window, padding never reaching a real hour."""
    ort = pytest.importorskip("onnxruntime")
    from vigil.models.train import attention

    model = _model(3)
    attention.export_onnx(model, str(tmp_path / "s.onnx"), str(tmp_path / "q.onnx"), str(tmp_path / "w.onnx"))
    x = torch.randn(3, 60, 12)
    lengths = [60, 2, 30]
    positions = np.array([[57, 58, 59], [0, 1, 1], [27, 28, 29]], np.int64)  # the last K real hours (padded)
    for i, n in enumerate(lengths):
        x[i, n:] = 1e3  # padding
    graph = ort.InferenceSession(str(tmp_path / "w.onnx"))
    got = graph.run(None, {"hours": x.numpy(), "positions": positions})[0]
    with torch.no_grad():
        for i, n in enumerate(lengths):
            full = torch.sigmoid(model(x[i : i + 1, :n]))[0]  # the banded encoder over the real hours
            np.testing.assert_allclose(got[i], full[positions[i]].numpy(), atol=1e-6)
