"""The recurrent model over the whole stay (PyTorch), trained hour by hour on utility targets and
exported as a one-step ONNX graph (the stream and ``vigil predict`` step it from a carried state)
and as a full-sequence graph (an ONNX GRU over [B, T, F], for checks).

Cell: input embedding (Linear + ReLU), a GRU cell written out (PyTorch's gate order and formula,
so the weights drop into ``nn.GRU`` for the full-sequence export), a logistic head on the state.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from vigil.models.stay_features import N_SEQUENCE_INPUTS

HIDDEN = 32
EPOCHS = 4
BATCH_STAYS = 128
LR = 3e-3
# Each epoch sees every stay with a positive hour and a fresh third of the others (their weights x3):
# the same expected loss at ~40 % of the cost on 2 cores.
NEGATIVE_STAY_SHARE = 0.33


class StepGRU(nn.Module):
    def __init__(self, n_in: int = N_SEQUENCE_INPUTS, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Linear(n_in, hidden)
        self.cell_x = nn.Linear(hidden, 3 * hidden)
        self.cell_h = nn.Linear(hidden, 3 * hidden)
        self.head = nn.Linear(hidden, 1)

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One hour: (x [B, F], h [B, H]) -> (h' [B, H], logit [B])."""
        return self._cell(self.cell_x(torch.relu(self.embed(x))), h)

    def _cell(self, gx: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.hidden
        gh = self.cell_h(h)
        r = torch.sigmoid(gx[:, :k] + gh[:, :k])
        z = torch.sigmoid(gx[:, k : 2 * k] + gh[:, k : 2 * k])
        n = torch.tanh(gx[:, 2 * k :] + r * gh[:, 2 * k :])
        h_new = (1 - z) * n + z * h
        return h_new, self.head(h_new).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every hour of [B, T, F] stays (admission at t = 0)."""
        gx = self.cell_x(torch.relu(self.embed(x)))
        h = x.new_zeros(x.shape[0], self.hidden)
        out = []
        for t in range(x.shape[1]):
            h, logit = self._cell(gx[:, t], h)
            out.append(logit)
        return torch.stack(out, 1)


def _batches(lengths: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Stays of similar length together (little padding), in a shuffled batch order."""
    order = np.argsort(lengths + rng.random(len(lengths)), kind="stable")
    batches = [order[i : i + BATCH_STAYS] for i in range(0, len(order), BATCH_STAYS)]
    return [batches[i] for i in rng.permutation(len(batches))]


def fit(
    seq: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    offsets: np.ndarray,
    stays: np.ndarray,
    seed: int,
    log: Callable[[str], None] = print,
    *,
    hidden: int | None = None,
    epochs: int | None = None,
    negative_share: float | None = None,
) -> StepGRU:
    """Train on the given stays; every hour is a training target (label y, weight w)."""
    epochs = EPOCHS if epochs is None else epochs
    share = NEGATIVE_STAY_SHARE if negative_share is None else negative_share
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = StepGRU(hidden=HIDDEN if hidden is None else hidden)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    positive = np.array([y[offsets[p] : offsets[p + 1]].any() for p in stays])
    w = np.where(
        np.repeat(np.isin(np.arange(len(offsets) - 1), stays[~positive]), np.diff(offsets)), w / NEGATIVE_STAY_SHARE, w
    )
    for epoch in range(epochs):
        for g in opt.param_groups:
            g["lr"] = LR * (0.6 ** (epoch * 4 / epochs))  # the same decay over any number of epochs
        total = weight = 0.0
        chosen = stays[positive | (rng.random(len(stays)) < share)]
        lengths = (offsets[chosen + 1] - offsets[chosen]).astype(np.int64)
        for batch in _batches(lengths, rng):
            xb, yb, wb = _pad(seq, y, w, offsets, chosen[batch])
            logit = model(xb)
            loss = (nn.functional.binary_cross_entropy_with_logits(logit, yb, reduction="none") * wb).sum()
            opt.zero_grad()
            (loss / wb.sum().clamp(min=1e-6)).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += float(loss.detach())
            weight += float(wb.sum())
        log(f"  gru epoch {epoch}: weighted loss {total / max(weight, 1e-9):.4f}")
    model.eval()
    return model


def _pad(
    seq: np.ndarray, y: np.ndarray, w: np.ndarray, offsets: np.ndarray, stays: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    t_max = int((offsets[stays + 1] - offsets[stays]).max())
    xb = np.zeros((len(stays), t_max, seq.shape[1]), np.float32)
    yb = np.zeros((len(stays), t_max), np.float32)
    wb = np.zeros((len(stays), t_max), np.float32)
    for i, p in enumerate(stays):
        a, b = offsets[p], offsets[p + 1]
        xb[i, : b - a], yb[i, : b - a], wb[i, : b - a] = seq[a:b], y[a:b], w[a:b]
    return torch.from_numpy(xb), torch.from_numpy(yb), torch.from_numpy(wb)


@torch.no_grad()
def predict(model: StepGRU, seq: np.ndarray, offsets: np.ndarray, stays: np.ndarray) -> np.ndarray:
    """Probability of every hour of ``stays`` (concatenated in the order given)."""
    out = {}
    zeros = np.zeros(len(seq), np.float32)
    lengths = (offsets[stays + 1] - offsets[stays]).astype(np.int64)
    order = np.argsort(lengths, kind="stable")
    for i in range(0, len(order), 512):
        chunk = stays[order[i : i + 512]]
        xb, _, _ = _pad(seq, zeros, zeros, offsets, chunk)
        p = torch.sigmoid(model(xb)).numpy()
        for j, s in enumerate(chunk):
            out[int(s)] = p[j, : offsets[s + 1] - offsets[s]]
    return np.concatenate([out[int(s)] for s in stays]).astype(np.float32)


class _OneStep(nn.Module):
    def __init__(self, model: StepGRU) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h_new, logit = self.model.step(x, h)
        return h_new, torch.sigmoid(logit)


class _FullSequence(nn.Module):
    """The same weights through ``nn.GRU`` (an ONNX GRU op over the whole stay)."""

    def __init__(self, model: StepGRU) -> None:
        super().__init__()
        self.embed, self.head = model.embed, model.head
        self.gru = nn.GRU(model.hidden, model.hidden, batch_first=True)
        with torch.no_grad():
            self.gru.weight_ih_l0.copy_(model.cell_x.weight)
            self.gru.bias_ih_l0.copy_(model.cell_x.bias)
            self.gru.weight_hh_l0.copy_(model.cell_h.weight)
            self.gru.bias_hh_l0.copy_(model.cell_h.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = x.new_zeros(1, x.shape[0], self.gru.hidden_size)  # an input, so any batch size runs
        h, _ = self.gru(torch.relu(self.embed(x)), h0)
        return torch.sigmoid(self.head(h).squeeze(-1))


def export_onnx(model: StepGRU, step_path: str, sequence_path: str) -> None:
    x, h = torch.zeros(2, N_SEQUENCE_INPUTS), torch.zeros(2, model.hidden)
    torch.onnx.export(
        _OneStep(model),
        (x, h),
        step_path,
        input_names=["x", "h"],
        output_names=["h_next", "probability"],
        dynamic_axes={"x": {0: "batch"}, "h": {0: "batch"}, "h_next": {0: "batch"}, "probability": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    torch.onnx.export(
        _FullSequence(model),
        (torch.zeros(2, 5, N_SEQUENCE_INPUTS),),
        sequence_path,
        input_names=["sequence"],
        output_names=["probability"],
        dynamic_axes={"sequence": {0: "batch", 1: "hours"}, "probability": {0: "batch", 1: "hours"}},
        opset_version=17,
        dynamo=False,
    )
