"""``np.where`` without branches, for the stepping core's hot paths (``models.aggregates.scan``,
``models.stay_features``).

numpy 2.4's ``np.where`` branches per element: on a mask with no pattern (which hours a variable was
measured in) it costs ~4-9 ns per element on this project's CPUs, a fifth of the scoring batch's
time. Selecting the bits instead (``(a & m) | (b & ~m)`` on the integers of the same width) costs
~1 ns and returns exactly the same values, NaN payloads and signed zeros included
(docs/performance.md, "Batched planning").
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Below this many elements the branches cost less than the bit-select's extra array operations.
SMALL = 2048


def where(cond: np.ndarray, a: Any, b: Any) -> np.ndarray:
    """``np.where(cond, a, b)``: same broadcasting, same result dtype (``np.result_type(a, b)``),
    same values."""
    if max(getattr(cond, "size", 1), getattr(a, "size", 1), getattr(b, "size", 1)) < SMALL:
        return np.where(cond, a, b)
    dtype = np.result_type(a, b)
    bits = np.dtype(f"i{dtype.itemsize}")
    x = np.asarray(a, dtype).view(bits)
    y = np.asarray(b, dtype).view(bits)
    mask = -np.asarray(cond).astype(bits)  # all bits set where cond
    return ((x & mask) | (y & ~mask)).view(dtype)
