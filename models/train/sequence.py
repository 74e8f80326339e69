"""The recurrent model over the whole stay (PyTorch), trained hour by hour on utility targets and
exported as a one-step ONNX graph (the stream and ``vigil predict`` step it from a carried state)
and as a full-sequence graph (an ONNX GRU over [B, T, F], for checks).

Model: input embedding (Linear + ReLU), a one-layer ``nn.GRU``, a logistic head on the state; the
one-step form writes the same GRU out for one hour (PyTorch's gate order and formula).
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
DROPOUT = 0.0
# Each epoch sees every stay with a positive hour and a fresh third of the others (their weights x3):
# the same expected loss at ~40 % of the cost on 2 cores.
NEGATIVE_STAY_SHARE = 0.33


class StepGRU(nn.Module):
    """Embedding -> one-layer GRU -> logistic head. Trained through ``nn.GRU`` (fused, ~3x faster on
    the CPU than a Python loop of cells); ``step`` is the same GRU written out for one hour, which is
    what the one-step ONNX graph exports. Dropout acts on the embedding during training only."""

    def __init__(self, n_in: int = N_SEQUENCE_INPUTS, hidden: int = HIDDEN, dropout: float = DROPOUT) -> None:
        super().__init__()
        self.hidden, self.n_in = hidden, n_in
        self.embed = nn.Linear(n_in, hidden)
        self.drop = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def step(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One hour: (x [B, F], h [B, H]) -> (h' [B, H], logit [B]); PyTorch's GRU gate order and formula."""
        k, g = self.hidden, self.gru
        gx = nn.functional.linear(torch.relu(self.embed(x)), g.weight_ih_l0, g.bias_ih_l0)
        gh = nn.functional.linear(h, g.weight_hh_l0, g.bias_hh_l0)
        r = torch.sigmoid(gx[:, :k] + gh[:, :k])
        z = torch.sigmoid(gx[:, k : 2 * k] + gh[:, k : 2 * k])
        n = torch.tanh(gx[:, 2 * k :] + r * gh[:, 2 * k :])
        h_new = (1 - z) * n + z * h
        return h_new, self.head(h_new).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every hour of [B, T, F] stays (admission at t = 0)."""
        h0 = x.new_zeros(1, x.shape[0], self.hidden)
        out, _ = self.gru(self.drop(torch.relu(self.embed(x))), h0)
        return self.head(out).squeeze(-1)


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
    dropout: float | None = None,
    lr: float | None = None,
) -> StepGRU:
    """Train on the given stays; every hour is a training target (label y, weight w)."""
    epochs = EPOCHS if epochs is None else epochs
    share = NEGATIVE_STAY_SHARE if negative_share is None else negative_share
    lr = LR if lr is None else lr
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = StepGRU(seq.shape[1], HIDDEN if hidden is None else hidden, DROPOUT if dropout is None else dropout)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    positive = np.array([y[offsets[p] : offsets[p + 1]].any() for p in stays])
    w = np.where(np.repeat(np.isin(np.arange(len(offsets) - 1), stays[~positive]), np.diff(offsets)), w / share, w)
    for epoch in range(epochs):
        for g in opt.param_groups:
            g["lr"] = lr * (0.6 ** (epoch * 4 / epochs))  # the same decay over any number of epochs
        chosen = stays[positive | (rng.random(len(stays)) < share)]
        log(f"  gru epoch {epoch}: weighted loss {train_epoch(model, opt, seq, y, w, offsets, chosen, rng):.4f}")
    model.eval()
    return model


def train_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    seq: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    offsets: np.ndarray,
    chosen: np.ndarray,
    rng: np.random.Generator,
) -> float:
    """One pass over the ``chosen`` stays in length-sorted batches (weighted BCE per hour, gradient
    clipped at 1); returns the epoch's weighted mean loss. Shared by every sequence recipe."""
    total = weight = 0.0
    lengths = (offsets[chosen + 1] - offsets[chosen]).astype(np.int64)
    for batch in _batches(lengths, rng):
        xb, yb, wb = _pad(seq, y, w, offsets, chosen[batch])
        loss = (nn.functional.binary_cross_entropy_with_logits(model(xb), yb, reduction="none") * wb).sum()
        opt.zero_grad()
        (loss / wb.sum().clamp(min=1e-6)).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        total += float(loss.detach())
        weight += float(wb.sum())
    return total / max(weight, 1e-9)


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
        self.embed, self.head, self.gru = model.embed, model.head, model.gru

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = x.new_zeros(1, x.shape[0], self.gru.hidden_size)  # an input, so any batch size runs
        h, _ = self.gru(torch.relu(self.embed(x)), h0)
        return torch.sigmoid(self.head(h).squeeze(-1))


def export_onnx(model: StepGRU, step_path: str, sequence_path: str) -> None:
    export_graphs(_OneStep(model), _FullSequence(model), model.n_in, model.hidden, step_path, sequence_path)


def export_graphs(
    step: nn.Module, sequence: nn.Module, n_in: int, hidden: int, step_path: str, sequence_path: str
) -> None:
    """A sequence model's two graphs: one step ``(x, h) -> (h_next, probability)`` and the whole stay
    ``sequence -> probability`` (the GRU's and the attention encoder's). The wrappers are put in eval
    mode: the exporter restores a wrapper's mode afterwards, and one left in training mode would
    switch the shared layers' dropout back on."""
    torch.onnx.export(
        step.eval(),
        (torch.zeros(2, n_in), torch.zeros(2, hidden)),
        step_path,
        input_names=["x", "h"],
        output_names=["h_next", "probability"],
        dynamic_axes={"x": {0: "batch"}, "h": {0: "batch"}, "h_next": {0: "batch"}, "probability": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    torch.onnx.export(
        sequence.eval(),
        (torch.zeros(2, 5, n_in),),
        sequence_path,
        input_names=["sequence"],
        output_names=["probability"],
        dynamic_axes={"sequence": {0: "batch", 1: "hours"}, "probability": {0: "batch", 1: "hours"}},
        opset_version=17,
        dynamo=False,
    )
