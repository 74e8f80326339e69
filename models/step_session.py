"""The recurrent model's one-step ONNX graph, run over many patients' step chains at once.

The graph is ``(x [B, F], h [B, H]) -> (h' [B, H], p [B])`` (inputs and outputs in that order). A
batch of patients needs a few steps each (normally one or two: the hour that closed and the current
hour, up to 48 when a late event replays the window), so ``StepSession.run_chains`` steps every chain
in lock step, one session call per step index for the whole batch (``models.stepping.run_chains`` is
the same contract in plain numpy).

IOBinding (onnxruntime's way to keep tensors on the device between calls): the inputs of every
step ``X [T, B, F]`` and the initial states go to the device in one copy; the states ping-pong
between two device buffers; the probabilities land in ``P [T, B]``; one copy brings the final states
and the probabilities back. Chains are sorted longest first, so the chains still running at step j
are a prefix of the batch: each step binds the first ``active`` rows of the buffers by pointer, and
no state crosses the host between steps. The chain of length k ends in buffer ``k % 2`` and is never
touched again (later steps bind fewer rows). On the CPU provider the same code runs with host
buffers (tests exercise it there); with CUDA the buffers live on the GPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

_F32 = np.dtype(np.float32).itemsize


@dataclass(frozen=True)
class ChainResult:
    """One chain's outcome: the state after its last step (its initial state when it has no
    steps) and the probability after each step."""

    state: np.ndarray  # [H]
    probabilities: np.ndarray  # [k]


def device_of(session: ort.InferenceSession) -> str:
    """The IOBinding device type of the provider the session actually runs on."""
    return "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"


class StepSession:
    """A one-step recurrent graph, callable as a ``models.stepping.StepFn`` and able to run many
    chains with the state kept on the session's device."""

    def __init__(self, session: ort.InferenceSession, hidden: int, device: str | None = None) -> None:
        self.session = session
        self.hidden = hidden
        self.device = device or device_of(session)
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 2 or len(outputs) != 2:
            raise ValueError("a one-step graph has inputs (x, h) and outputs (h', probability)")
        self.x_name, self.h_name = inputs[0].name, inputs[1].name
        self.h_out, self.p_out = outputs[0].name, outputs[1].name
        self.n_inputs = int(inputs[0].shape[1])
        self._p_rank = len(outputs[1].shape)  # [B] or [B, 1]

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def __call__(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One step on host arrays (the ``StepFn`` contract; used by tests and small calls)."""
        h_new, p = self.session.run(None, {self.x_name: x.astype(np.float32), self.h_name: h.astype(np.float32)})
        return np.asarray(h_new, np.float32), np.asarray(p, np.float32).reshape(-1)

    def run_chains(self, chains: Sequence[tuple[np.ndarray | None, np.ndarray]]) -> list[ChainResult]:
        """Step every chain ``(initial state or None for zeros, inputs [k, F])`` in lock step."""
        n = len(chains)
        lengths = np.array([len(x) for _, x in chains], dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")  # longest first: the running chains are a prefix
        steps = int(lengths.max(initial=0))
        h0 = np.zeros((n, self.hidden), np.float32)
        x_all = np.zeros((steps, n, self.n_inputs), np.float32)
        for pos, i in enumerate(order.tolist()):
            start, x = chains[i]
            if start is not None:
                h0[pos] = start
            x_all[: lengths[i], pos] = x
        states, probs = self._run_sorted(x_all, h0, lengths[order])
        out: list[ChainResult | None] = [None] * n
        for pos, i in enumerate(order.tolist()):
            k = int(lengths[i])
            out[i] = ChainResult(states[k % 2][pos].copy(), probs[:k, pos].copy())
        return out  # type: ignore[return-value]

    def _run_sorted(
        self, x_all: np.ndarray, h0: np.ndarray, lengths: np.ndarray
    ) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        steps, n = x_all.shape[0], h0.shape[0]
        if steps == 0 or n == 0:
            return (h0, h0), np.zeros((steps, n), np.float32)
        dev = self.device
        x_dev = _on_device(x_all, dev)
        h_dev = (_on_device(h0, dev), _on_device(h0, dev))
        p_dev = ort.OrtValue.ortvalue_from_shape_and_type((steps, n), np.float32, dev, 0)
        binding = self.session.io_binding()
        x_bytes = self.n_inputs * _F32
        active_per_step = (lengths[None, :] > np.arange(steps)[:, None]).sum(1)  # chains still running
        for j in range(steps):
            active = int(active_per_step[j])
            src, dst = h_dev[j % 2], h_dev[(j + 1) % 2]
            x_ptr = x_dev.data_ptr() + j * n * x_bytes
            binding.bind_input(self.x_name, dev, 0, np.float32, [active, self.n_inputs], x_ptr)
            binding.bind_input(self.h_name, dev, 0, np.float32, [active, self.hidden], src.data_ptr())
            binding.bind_output(self.h_out, dev, 0, np.float32, [active, self.hidden], dst.data_ptr())
            p_shape = [active] if self._p_rank == 1 else [active, 1]
            binding.bind_output(self.p_out, dev, 0, np.float32, p_shape, p_dev.data_ptr() + j * n * _F32)
            self.session.run_with_iobinding(binding)
        return (h_dev[0].numpy(), h_dev[1].numpy()), p_dev.numpy()


def _on_device(array: np.ndarray, device: str) -> Any:
    value = ort.OrtValue.ortvalue_from_shape_and_type(array.shape, np.float32, device, 0)
    value.update_inplace(np.ascontiguousarray(array, dtype=np.float32))
    return value
