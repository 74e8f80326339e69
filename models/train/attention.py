"""A causal attention encoder over the sequence model's inputs: the alternative to the GRU that issue
12 asks to report beside it; since bundle 2.5 the served ``deterioration`` model (it ranks better
than the GRU under every shift test, docs/models.md).

Hour t attends to hours t-47..t (the stream's window: ``stepping.WINDOW_HOURS``) of the same inputs
the GRU steps through (``stay_features.sequence_inputs``: each a function of the aggregate since
admission and the hour's row, so whole-stay history reaches every position).

Served through the same one-step contract as the GRU (``(x [B, F], h [B, H]) -> (h', p)``): the
state is a key/value cache, the keys and values of the 47 hours before (``CACHE``) and how many of
them are real (``AttentionStep``). One layer means an hour's key and value depend on that hour's
inputs alone, so the step is the full-sequence encoder's output at that hour, exactly (up to float
rounding); ``tests/unit/models/test_attention_step.py`` checks it where PyTorch is installed, and
the bundle's reference arrays check the exported graph everywhere.

One pre-norm encoder layer (d 32, 4 heads, feed-forward 64, dropout 0.1; a second layer would see 94
hours back, beyond the window), a logistic head per hour; trained like the GRU (``sequence.fit``:
utility targets and weights, stays batched by length).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from vigil.models.train.sequence import BATCH_STAYS, LR, NEGATIVE_STAY_SHARE, _pad, export_graphs, train_epoch

WINDOW = 48
CACHE = WINDOW - 1  # hours before the current one that the step's state keeps
D_MODEL = 32
HEADS = 4
EPOCHS = 8  # the screened recipe att_e8_d32_n33_i2 (2.6; 2.5 served att_e4_d32_n33, docs/models.md)


def state_size(d_model: int = D_MODEL) -> int:
    """Floats in the one-step state: keys and values of ``CACHE`` hours, and their count."""
    return 2 * CACHE * d_model + 1


class WindowEncoder(nn.Module):
    def __init__(self, n_in: int, d_model: int = D_MODEL, layers: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Linear(n_in, d_model)
        self.n_in, self.d_model = n_in, d_model
        layer = nn.TransformerEncoderLayer(
            d_model, HEADS, 2 * d_model, dropout=dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every hour of [B, T, F] stays (right-padded: padding never reaches a real hour)."""
        t = x.shape[1]
        i = torch.arange(t)
        allowed = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - WINDOW)
        mask = torch.zeros(t, t).masked_fill(~allowed, float("-inf"))
        return self.head(self.encoder(self.embed(x), mask=mask)).squeeze(-1)


def fit(
    seq: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    offsets: np.ndarray,
    stays: np.ndarray,
    seed: int,
    log: Callable[[str], None] = print,
    *,
    epochs: int = EPOCHS,
    negative_share: float = NEGATIVE_STAY_SHARE,
    d_model: int = D_MODEL,
) -> WindowEncoder:
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = WindowEncoder(seq.shape[1], d_model)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    positive = np.array([y[offsets[p] : offsets[p + 1]].any() for p in stays])
    w = np.where(
        np.repeat(np.isin(np.arange(len(offsets) - 1), stays[~positive]), np.diff(offsets)), w / negative_share, w
    )
    for epoch in range(epochs):
        for g in opt.param_groups:
            g["lr"] = LR * (0.6 ** (epoch * 4 / epochs))
        chosen = stays[positive | (rng.random(len(stays)) < negative_share)]
        loss = train_epoch(model, opt, seq, y, w, offsets, chosen, rng)
        log(f"  attention epoch {epoch}: weighted loss {loss:.4f}")
    model.eval()
    return model


@torch.no_grad()
def predict(model: WindowEncoder, seq: np.ndarray, offsets: np.ndarray, stays: np.ndarray) -> np.ndarray:
    out = {}
    zeros = np.zeros(len(seq), np.float32)
    lengths = (offsets[stays + 1] - offsets[stays]).astype(np.int64)
    order = np.argsort(lengths, kind="stable")
    for i in range(0, len(order), BATCH_STAYS):
        chunk = stays[order[i : i + BATCH_STAYS]]
        xb, _, _ = _pad(seq, zeros, zeros, offsets, chunk)
        p = torch.sigmoid(model(xb)).numpy()
        for j, s in enumerate(chunk):
            out[int(s)] = p[j, : offsets[s + 1] - offsets[s]]
    return np.concatenate([out[int(s)] for s in stays]).astype(np.float32)


class AttentionStep(nn.Module):
    """One hour of a one-layer ``WindowEncoder`` from a key/value cache: ``(x [B, F], h [B, H]) ->
    (h' [B, H], probability [B])``. ``h``: keys [CACHE, d] and values [CACHE, d] of the hours before,
    oldest first and right-aligned (the newest in the last slot), then their count (0 at admission,
    at most CACHE). The zero state is admission, as for the GRU."""

    def __init__(self, model: WindowEncoder) -> None:
        super().__init__()
        layer = model.encoder.layers[0]
        if len(model.encoder.layers) != 1 or not layer.norm_first:
            raise ValueError("the step form needs one pre-norm encoder layer")
        self.embed, self.layer, self.head = model.embed, layer, model.head
        self.d = model.d_model

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d, n = self.d, CACHE
        attn = self.layer.self_attn
        heads = attn.num_heads
        e = self.embed(x)
        q, k, v = nn.functional.linear(self.layer.norm1(e), attn.in_proj_weight, attn.in_proj_bias).split(d, -1)
        keys = torch.cat([h[:, : n * d].reshape(-1, n, d), k[:, None]], 1)  # [B, 48, d]
        values = torch.cat([h[:, n * d : 2 * n * d].reshape(-1, n, d), v[:, None]], 1)
        count = h[:, -1:]
        slot = torch.arange(n + 1, dtype=h.dtype)[None, :]
        valid = slot >= n - count  # [B, 48]: the last `count` cached hours and the current one
        hd = d // heads
        scores = (keys.reshape(-1, n + 1, heads, hd) * q.reshape(-1, 1, heads, hd)).sum(-1) / hd**0.5
        scores = scores.masked_fill(~valid[:, :, None], float("-inf"))  # [B, 48, heads]
        weights = torch.softmax(scores, 1)
        mixed = (weights[..., None] * values.reshape(-1, n + 1, heads, hd)).sum(1).reshape(-1, d)
        p = self.probability(e, mixed)
        h_next = torch.cat(
            [keys[:, 1:].reshape(-1, n * d), values[:, 1:].reshape(-1, n * d), torch.clamp(count + 1, max=n)], 1
        )
        return h_next, p

    def probability(self, e: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
        """The rest of the layer after attention, for scored hours: embeddings ``e`` [..., d] and
        their attention outputs ``mixed`` [..., d] (heads concatenated) -> probabilities [...]."""
        r = e + self.layer.self_attn.out_proj(mixed)
        out = r + self.layer.linear2(self.layer.activation(self.layer.linear1(self.layer.norm2(r))))
        return torch.sigmoid(self.head(out).squeeze(-1))


class _FullSequence(nn.Module):
    """The same layer over whole stays [B, T, F], written out (``nn.MultiheadAttention``'s traced
    graph fixes the number of hours): hour t attends to hours t-47..t."""

    def __init__(self, model: WindowEncoder) -> None:
        super().__init__()
        self.step = AttentionStep(model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.step
        layer, attn, d = s.layer, s.layer.self_attn, s.d
        heads = attn.num_heads
        hd = d // heads
        e = s.embed(x)
        q, k, v = nn.functional.linear(layer.norm1(e), attn.in_proj_weight, attn.in_proj_bias).split(d, -1)
        b, t = x.shape[0], x.shape[1]
        q, k, v = (z.reshape(b, t, heads, hd).transpose(1, 2) for z in (q, k, v))  # [B, heads, T, hd]
        i = torch.arange(t)
        allowed = (i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - WINDOW)
        scores = (q @ k.transpose(-1, -2) / hd**0.5).masked_fill(~allowed, float("-inf"))
        mixed = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(b, t, d)
        return s.probability(e, mixed)


class _ScoredHours(nn.Module):
    """The stream's form: a patient's consecutive hours [P, T, F] (right-padded) and the positions of
    the hours to score [P, K] -> their probabilities [P, K], each hour attending to the 47 before it.
    Keys and values once per hour, shared by the windows of the same patient (a batch scores the hour
    that closed and the open one: 49 hours of keys, not 96); queries and feed-forward of the scored
    hours only."""

    def __init__(self, model: WindowEncoder) -> None:
        super().__init__()
        self.step = AttentionStep(model)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        s = self.step
        layer, attn, d = s.layer, s.layer.self_attn, s.d
        heads = attn.num_heads
        hd = d // heads
        b, t, k_n = x.shape[0], x.shape[1], positions.shape[1]
        e = s.embed(x)  # [P, T, d]
        k, v = nn.functional.linear(layer.norm1(e), attn.in_proj_weight[d:], attn.in_proj_bias[d:]).split(d, -1)
        e_q = torch.gather(e, 1, positions[:, :, None].expand(b, k_n, d))  # [P, K, d]
        q = nn.functional.linear(layer.norm1(e_q), attn.in_proj_weight[:d], attn.in_proj_bias[:d])
        q, k, v = (z.reshape(b, -1, heads, hd).transpose(1, 2) for z in (q, k, v))  # [P, heads, ., hd]
        j = torch.arange(t)[None, None, :]
        allowed = (j <= positions[:, :, None]) & (j > positions[:, :, None] - WINDOW)  # [P, K, T]
        scores = (q @ k.transpose(-1, -2) / hd**0.5).masked_fill(~allowed[:, None], float("-inf"))
        mixed = (torch.softmax(scores, -1) @ v).transpose(1, 2).reshape(b, k_n, d)
        return s.probability(e_q, mixed)


def export_onnx(model: WindowEncoder, step_path: str, sequence_path: str, window_path: str | None = None) -> None:
    """The one-step graph ``vigil predict`` steps through whole stays, the full-sequence graph
    (checks) and, with ``window_path``, the scored-hours graph the stream scores with."""
    model.eval()
    hidden = state_size(model.d_model)
    export_graphs(AttentionStep(model), _FullSequence(model), model.n_in, hidden, step_path, sequence_path)
    if window_path is not None:
        torch.onnx.export(
            _ScoredHours(model).eval(),
            (torch.zeros(2, 5, model.n_in), torch.tensor([[3, 4], [1, 2]])),
            window_path,
            input_names=["hours", "positions"],
            output_names=["probability"],
            dynamic_axes={
                "hours": {0: "batch", 1: "hours"},
                "positions": {0: "batch", 1: "scored"},
                "probability": {0: "batch", 1: "scored"},
            },
            opset_version=17,
            dynamo=False,
        )
