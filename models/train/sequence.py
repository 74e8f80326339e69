"""Deterioration model: a small GRU over the last 48 h window (PyTorch, exported to ONNX).

Training samples are hour-windows: every positive hour (sepsis onset within the next 12 h) plus a
seeded random sample of negative hours, with negatives weighted by the inverse sampling rate so
the output stays a calibrated probability on all hours.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from vigil.models.features import N_SEQUENCE_CHANNELS, WINDOW_HOURS, stay_sequence_inputs
from vigil.models.train.data import Cohort

HIDDEN = 32
EPOCHS = 4
BATCH = 256
NEG_PER_STAY = 6


class DeteriorationGRU(nn.Module):
    def __init__(self, n_in: int = N_SEQUENCE_CHANNELS, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU())
        self.gru = nn.GRU(hidden, hidden, num_layers=1, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 48, Fs] -> probability [B]
        h, _ = self.gru(self.embed(x))
        return torch.sigmoid(self.head(h[:, -1]).squeeze(-1))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(self.embed(x))
        return self.head(h[:, -1]).squeeze(-1)


def _windows_for(c: Cohort, patients: np.ndarray, hours_of: dict[int, np.ndarray]) -> np.ndarray:
    out = []
    for p in patients:
        h = hours_of.get(int(p))
        if h is None or len(h) == 0:
            continue
        m, s, _ = c.stay(int(p))
        out.append(stay_sequence_inputs(m, s, h))
    return np.concatenate(out) if out else np.zeros((0, WINDOW_HOURS, N_SEQUENCE_CHANNELS), np.float32)


def fit(c: Cohort, patients: np.ndarray, y: np.ndarray, eligible: np.ndarray, seed: int, log=print):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    o = c.offsets
    hours_of: dict[int, np.ndarray] = {}
    labels_of: dict[int, np.ndarray] = {}
    n_neg_total = n_neg_sampled = 0
    for p in patients:
        yy = y[o[p] : o[p + 1]]
        el = eligible[o[p] : o[p + 1]]
        pos = np.nonzero(el & (yy == 1))[0]
        neg = np.nonzero(el & (yy == 0))[0]
        n_neg_total += len(neg)
        take = rng.choice(neg, size=min(NEG_PER_STAY, len(neg)), replace=False) if len(neg) else neg
        n_neg_sampled += len(take)
        h = np.r_[pos, take]
        hours_of[int(p)] = h
        labels_of[int(p)] = np.r_[np.ones(len(pos)), np.zeros(len(take))]
    neg_weight = n_neg_total / max(n_neg_sampled, 1)
    x = _windows_for(c, patients, hours_of)
    yl = np.concatenate([labels_of[int(p)] for p in patients if len(hours_of[int(p)])]).astype(np.float32)
    w = np.where(yl == 1, 1.0, neg_weight).astype(np.float32)
    log(f"  gru: {len(yl)} windows ({int(yl.sum())} positive), negative weight {neg_weight:.1f}")
    model = DeteriorationGRU()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    xt, yt, wt = torch.from_numpy(x), torch.from_numpy(yl), torch.from_numpy(w)
    for epoch in range(EPOCHS):
        perm = torch.from_numpy(rng.permutation(len(yl)))
        total = 0.0
        for g in opt.param_groups:
            g["lr"] = 2e-3 * (0.5**epoch)
        for start in range(0, len(perm), BATCH):
            idx = perm[start : start + BATCH]
            logit = model.logits(xt[idx])
            loss = (nn.functional.binary_cross_entropy_with_logits(logit, yt[idx], reduction="none") * wt[idx]).sum()
            loss = loss / wt[idx].sum()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            total += float(loss.detach()) * len(idx)
        log(f"  gru epoch {epoch}: loss {total / len(perm):.4f}")
    model.eval()
    return model


@torch.no_grad()
def predict_rows(model: DeteriorationGRU, c: Cohort, patients: np.ndarray, chunk_rows: int = 20000) -> np.ndarray:
    """Probability for every hour of the given patients, concatenated in patient order."""
    out: list[np.ndarray] = []
    buf: list[np.ndarray] = []
    n = 0

    def flush() -> None:
        nonlocal buf, n
        if buf:
            xb = torch.from_numpy(np.concatenate(buf))
            out.append(np.concatenate([model(xb[i : i + 4096]).numpy() for i in range(0, len(xb), 4096)]))
        buf, n = [], 0

    for p in patients:
        m, s, _ = c.stay(int(p))
        buf.append(stay_sequence_inputs(m, s))
        n += len(m)
        if n >= chunk_rows:
            flush()
    flush()
    return np.concatenate(out).astype(np.float32)


def export_onnx(model: DeteriorationGRU, path: str) -> None:
    dummy = torch.zeros(2, WINDOW_HOURS, N_SEQUENCE_CHANNELS)
    torch.onnx.export(
        model,
        (dummy,),
        path,
        input_names=["sequence"],
        output_names=["probability"],
        dynamic_axes={"sequence": {0: "batch"}, "probability": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
