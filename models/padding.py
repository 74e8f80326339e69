"""Batches padded to a few bucket sizes, so an accelerator's provider sees few distinct shapes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def bucket_size(n: int, buckets: Sequence[int]) -> int:
    """Smallest bucket >= n (n larger than every bucket is split by the caller)."""
    for b in sorted(buckets):
        if b >= n:
            return b
    return n


def run_padded(session: Any, name: str, x: np.ndarray, buckets: Sequence[int] | None) -> list[np.ndarray]:
    """Run ``session`` on ``x`` in chunks padded to bucket sizes; returns every output, unpadded."""
    if not buckets:
        return list(session.run(None, {name: x}))
    top = max(buckets)
    outs: list[list[np.ndarray]] = []
    for start in range(0, max(len(x), 1), top):
        chunk = x[start : start + top]
        size = bucket_size(len(chunk), buckets)
        if size > len(chunk):
            pad = np.zeros((size - len(chunk), *x.shape[1:]), dtype=x.dtype)
            chunk = np.concatenate([chunk, pad])
        res = session.run(None, {name: chunk})
        outs.append([r[: min(top, len(x) - start)] for r in res])
    return [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]
