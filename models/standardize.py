"""The per-value transform shared by every model input: log1p for skewed labs, centre/scale by set
A's median and IQR, clip to ±5. Elementwise, so it commutes with windowing and with carrying running
aggregates (``models.stay_features``)."""

from __future__ import annotations

from typing import Final

import numpy as np

from vigil.schemas.codes import DYNAMIC_CODES

# (centre, scale) per code after the transform: set-A median and IQR (log1p for skewed labs),
# with clinically sensible scales where set A's IQR is degenerate. EtCO2 is absent from set A.
_LOG_CODES: Final[frozenset[str]] = frozenset(
    {
        "AST",
        "Alkalinephos",
        "Bilirubin_direct",
        "Bilirubin_total",
        "TroponinI",
        "Lactate",
        "Creatinine",
        "BUN",
        "Glucose",
        "WBC",
        "Fibrinogen",
        "Platelets",
        "PTT",
    }
)
_NORM: Final[dict[str, tuple[float, float]]] = {
    "HR": (84, 23),
    "O2Sat": (98, 4),
    "Temp": (37.06, 1.0),
    "SBP": (118.5, 29),
    "MAP": (77, 19.33),
    "DBP": (58.5, 16),
    "Resp": (18, 7),
    "EtCO2": (35.0, 10.0),
    "BaseExcess": (0, 4),
    "HCO3": (24, 5),
    "FiO2": (0.5, 0.15),
    "pH": (7.39, 0.08),
    "PaCO2": (40, 9),
    "SaO2": (97, 4),
    "AST": (4.06, 1.831),
    "BUN": (2.944, 0.8362),
    "Alkalinephos": (4.369, 0.7444),
    "Calcium": (8.3, 1),
    "Chloride": (106, 6),
    "Creatinine": (0.6419, 0.3448),
    "Bilirubin_direct": (0.8755, 1.142),
    "Glucose": (4.828, 0.3),
    "Lactate": (1.03, 0.5465),
    "Magnesium": (2, 0.4),
    "Phosphate": (3.4, 1.5),
    "Potassium": (4.1, 0.7),
    "Bilirubin_total": (0.6419, 0.7577),
    "TroponinI": (1.668, 1.939),
    "Hct": (30.2, 6.1),
    "Hgb": (10.4, 2.2),
    "PTT": (3.509, 0.425),
    "WBC": (2.468, 0.5306),
    "Fibrinogen": (5.525, 0.6595),
    "Platelets": (5.204, 0.6614),
}
_CENTER = np.array([_NORM[c][0] for c in DYNAMIC_CODES], dtype=np.float32)
_SCALE = np.array([_NORM[c][1] for c in DYNAMIC_CODES], dtype=np.float32)
_LOG_MASK = np.array([c in _LOG_CODES for c in DYNAMIC_CODES])


def standardize(matrix: np.ndarray) -> np.ndarray:
    """Per-value transform (log1p for skewed labs), centre/scale and clip; NaN stays NaN.

    Elementwise, so applying it before windowing gives the same numbers as after."""
    x = np.where(_LOG_MASK, np.log1p(np.clip(matrix, 0, None)), matrix)
    return np.clip((x - _CENTER) / _SCALE, -5.0, 5.0).astype(np.float32)
