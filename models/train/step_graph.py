"""Build a one-step recurrent ONNX graph ``(x [B, F], h [B, H]) -> (h' [B, H], probability [B])``
from GRU weights with ``onnx.helper`` (no PyTorch): the serving contract of ``models.step_session``.

ONNX's GRU operator with a sequence of length 1 and ``initial_h`` is exactly one recurrent step
(gate order z, r, h; ``linear_before_reset=1`` is PyTorch's GRU). Tests use it for small seeded
graphs (the IOBinding runner, a tiny stepping bundle); the shipped graph is exported from PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


@dataclass(frozen=True)
class GruWeights:
    """An embedding ``relu(x_in @ embed_w + embed_b)``, a one-layer GRU (ONNX layout) and an MLP head
    (ReLU between layers, sigmoid after the last, which has one output)."""

    embed_w: np.ndarray  # [F_in, E]
    embed_b: np.ndarray  # [E]
    gru_w: np.ndarray  # [1, 3H, E]
    gru_r: np.ndarray  # [1, 3H, H]
    gru_b: np.ndarray  # [1, 6H]
    head: Sequence[tuple[np.ndarray, np.ndarray]]  # (W [out, in], b [out]) per layer, PyTorch layout

    @property
    def hidden(self) -> int:
        return int(self.gru_r.shape[-1])

    @classmethod
    def random(cls, n_inputs: int, hidden: int, seed: int = 0) -> GruWeights:
        r = np.random.default_rng(seed)

        def w(*shape: int, scale: float = 0.3) -> np.ndarray:
            return r.normal(0, scale, shape).astype(np.float32)

        return cls(
            w(n_inputs, hidden, scale=0.2),
            w(hidden, scale=0.1),
            w(1, 3 * hidden, hidden),
            w(1, 3 * hidden, hidden),
            w(1, 6 * hidden, scale=0.1),
            [(w(1, hidden, scale=0.5), w(1, scale=0.1))],
        )

    def step_numpy(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The same step in numpy (ONNX GRU equations, linear_before_reset=1): a test reference."""
        hid = self.hidden
        e = np.maximum(x @ self.embed_w + self.embed_b, 0.0)
        w, r, b = self.gru_w[0], self.gru_r[0], self.gru_b[0]
        gx = e @ w.T + b[: 3 * hid]
        gh = h @ r.T + b[3 * hid :]
        z = 1 / (1 + np.exp(-(gx[:, :hid] + gh[:, :hid])))
        rr = 1 / (1 + np.exp(-(gx[:, hid : 2 * hid] + gh[:, hid : 2 * hid])))
        n = np.tanh(gx[:, 2 * hid :] + rr * gh[:, 2 * hid :])
        h_new = ((1 - z) * n + z * h).astype(np.float32)
        y = h_new
        for k, (hw, hb) in enumerate(self.head):
            y = y @ hw.T + hb
            if k < len(self.head) - 1:
                y = np.maximum(y, 0.0)
        return h_new, (1 / (1 + np.exp(-y[:, 0]))).astype(np.float32)


def _const(name: str, value: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def step_model(
    weights: GruWeights,
    n_inputs: int,
    pre_nodes: Sequence[onnx.NodeProto] = (),
    pre_init: Sequence[TensorProto] = (),
    embed_input: str = "x",
) -> onnx.ModelProto:
    """The one-step graph. ``pre_nodes`` may turn ``x`` into ``embed_input`` (the embedding's input)."""
    hid = weights.hidden
    init = [
        *pre_init,
        _const("embed_w", weights.embed_w.astype(np.float32)),
        _const("embed_b", weights.embed_b.astype(np.float32)),
        _const("gru_w", weights.gru_w.astype(np.float32)),
        _const("gru_r", weights.gru_r.astype(np.float32)),
        _const("gru_b", weights.gru_b.astype(np.float32)),
        _const("axis0", np.array([0], np.int64)),
        _const("axis1", np.array([1], np.int64)),
    ]
    nodes = [
        *pre_nodes,
        helper.make_node("MatMul", [embed_input, "embed_w"], ["e_mm"]),
        helper.make_node("Add", ["e_mm", "embed_b"], ["e_lin"]),
        helper.make_node("Relu", ["e_lin"], ["e"]),
        helper.make_node("Unsqueeze", ["e", "axis0"], ["seq"]),  # [1, B, E]: a sequence of one step
        helper.make_node("Unsqueeze", ["h", "axis0"], ["h0"]),
        helper.make_node(
            "GRU",
            ["seq", "gru_w", "gru_r", "gru_b", "", "h0"],
            ["", "h_last"],
            hidden_size=hid,
            linear_before_reset=1,
        ),
        helper.make_node("Squeeze", ["h_last", "axis0"], ["h_next"]),
    ]
    y = "h_next"
    for k, (hw, hb) in enumerate(weights.head):
        init += [_const(f"head{k}_w", hw.astype(np.float32)), _const(f"head{k}_b", hb.astype(np.float32))]
        nodes.append(helper.make_node("Gemm", [y, f"head{k}_w", f"head{k}_b"], [f"head{k}"], transB=1))
        y = f"head{k}"
        if k < len(weights.head) - 1:
            nodes.append(helper.make_node("Relu", [y], [f"head{k}_relu"]))
            y = f"head{k}_relu"
    nodes += [
        helper.make_node("Squeeze", [y, "axis1"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
    ]
    graph = helper.make_graph(
        nodes,
        "recurrent_step",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", n_inputs]),
            helper.make_tensor_value_info("h", TensorProto.FLOAT, ["batch", hid]),
        ],
        [
            helper.make_tensor_value_info("h_next", TensorProto.FLOAT, ["batch", hid]),
            helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch"]),
        ],
        init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
