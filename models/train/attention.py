"""A causal attention encoder over the recurrent model's inputs: the alternative to the GRU that issue
12 asks to report beside it (an experiment, screened by the shift tests; not served).

Hour t attends to hours t-47..t (the stream's window: ``stepping.WINDOW_HOURS``) of the same inputs
the GRU steps through (``stay_features.sequence_inputs``: each a function of the aggregate since
admission and the hour's row, so whole-stay history reaches every position). Serving it would mean
a window graph ([B, 48, F] -> probability of the newest hour) instead of the one-step graph: no
state to carry, 48 positions recomputed per scored hour.

One pre-norm encoder layer (d 32, 4 heads, feed-forward 64, dropout 0.1; a second layer would see 94
hours back, beyond the window), a logistic head per hour; trained like the GRU (``sequence.fit``:
utility targets and weights, stays batched by length).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from vigil.models.train.sequence import BATCH_STAYS, LR, NEGATIVE_STAY_SHARE, _pad, train_epoch

WINDOW = 48
D_MODEL = 32


class WindowEncoder(nn.Module):
    def __init__(self, n_in: int, d_model: int = D_MODEL, layers: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Linear(n_in, d_model)
        layer = nn.TransformerEncoderLayer(d_model, 4, 2 * d_model, dropout=dropout, batch_first=True, norm_first=True)
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
    epochs: int = 8,
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
