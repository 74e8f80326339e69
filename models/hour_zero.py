"""Where a stay's hour 0 lies (docs/models.md, "Hour 0: the first measurement").

A challenge file's first row is the hour the stay's file begins, often the ICU admission hour, and
often empty: 12,573 of set A's 20,336 files hold no measurement in it (12,839 once the values out of
the stream's ranges are blanked). A hospital feed cannot send an empty hour; the stream's window
(``models.window``) counts from the stay's first measurement. So, since bundle 2.7.0, everything
does: a stay is its file from its first measured row on (``first_measured_row``), which training
(``--hour-zero first-measurement``), ``vigil predict`` and ``vigil evaluate`` read. Pure.
"""

from __future__ import annotations

import numpy as np


def first_measured_row(matrix: np.ndarray) -> int:
    """The index of the first row of ``matrix`` ([T, variables], NaN = not measured) that holds a
    measurement; ``len(matrix)`` when none does (a stay a feed never sends)."""
    measured = ~np.isnan(matrix).all(axis=1)
    return int(np.argmax(measured)) if measured.any() else len(matrix)
