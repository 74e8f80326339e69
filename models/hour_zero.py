"""Where a stay's hour 0 lies (docs/models.md, "Hour 0: training's and a hospital feed's").

A challenge file's first row is the hour the stay's file begins, often the ICU admission hour, and
often empty: 12,573 of set A's 20,336 files hold no measurement in it. A hospital feed cannot send an
empty hour; the stream's window (``models.window``) counts from the stay's first measurement. The
stays as a feed shows them are the files from their first measured row on (``first_measured_row``):
what training reads with ``--hour-zero first-measurement``, to measure whether that anchor holds up
under the shift tests before a bundle is trained and served with it. Pure.
"""

from __future__ import annotations

import numpy as np


def first_measured_row(matrix: np.ndarray) -> int:
    """The index of the first row of ``matrix`` ([T, variables], NaN = not measured) that holds a
    measurement; ``len(matrix)`` when none does (a stay a feed never sends)."""
    measured = ~np.isnan(matrix).all(axis=1)
    return int(np.argmax(measured)) if measured.any() else len(matrix)
