"""Training targets derived from the challenge utility (Reyna et al. 2020): what the models are judged on.

Per hour, u1 - u0 is what alerting gains over staying silent (``models.utility.row_utilities``):
positive from 12 h before t_sepsis to 3 h after (peak 6 h before; a miss near onset costs up to 2),
-0.05 for any other hour of a septic stay before the ramp and every hour of a non-septic stay, 0 after
t_sepsis + 3 (the utility no longer scores those hours). The label is "alerting helps"
(u1 > u0) and the weight is |u1 - u0|, so a weighted classifier maximizes the utility's expectation.
Hours after t_sepsis + 3 keep the SepsisLabel as label with a small weight (``LATE_WEIGHT``): the
utility ignores them, but hourly AUROC counts them and a clinician still expects a septic patient to
look septic.
"""

from __future__ import annotations

import numpy as np

from vigil.models.utility import row_utilities

LATE_WEIGHT = 0.05


def utility_targets(labels: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(label int8, weight float32) per hour of the concatenated stays."""
    y = np.zeros(len(labels), np.int8)
    w = np.zeros(len(labels), np.float32)
    o = np.r_[0, np.cumsum(lengths)]
    for p in range(len(lengths)):
        lab = labels[o[p] : o[p + 1]]
        u0, u1 = row_utilities(lab)
        gain = u1 - u0
        yy = (gain > 0).astype(np.int8)
        ww = np.abs(gain).astype(np.float32)
        if lab.any():
            late = np.arange(len(lab)) > int(np.argmax(lab)) + 6 + 3
            yy[late] = 1
            ww[late] = LATE_WEIGHT
        y[o[p] : o[p + 1]] = yy
        w[o[p] : o[p + 1]] = ww
    return y, w


TARGET = (
    "alerting helps under the PhysioNet 2019 utility: t_sepsis - 12 h < t <= t_sepsis + 3 h "
    "(later septic hours: label 1, weight 0.05); weight |u1 - u0|"
)
