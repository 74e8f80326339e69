"""Replay challenge-format ICU stays as timestamped Vigil events through Kafka.

Row i of a stay becomes one event per measured variable, observed 30 minutes into the file's hour i,
and Age and Gender come 30 minutes into its row 0, so the worker's hourly window holds the file's
rows from its first measured row on (``vigil replay`` compares the streamed scores with ``vigil
predict``): the stream's hour h is the file's row first-measured + h, the models' ``icu_hours``
(``models.hour_zero``); the rows before it, where the age and sex are sent, are never scored. Not the
file's ICULOS, which no path reads.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from vigil.schemas.codes import DISCHARGE, DYNAMIC_CODES, LABS, canonical_unit
from vigil.schemas.events import PatientEvent

REPLAY_STATICS = ("Age", "Gender")


@dataclass(frozen=True)
class Stay:
    patient_id: str
    matrix: np.ndarray
    static: dict[str, float]
    labels: np.ndarray | None

    @property
    def septic(self) -> bool:
        return self.labels is not None and bool(self.labels.max(initial=0))


def load_stays(files: list[Path]) -> list[Stay]:
    from vigil.models.offline import read_psv

    stays = []
    for path in files:
        matrix, static, labels = read_psv(path)
        stays.append(Stay(path.stem, matrix, static, labels))
    return stays


def pick_stays(data_dir: Path, n: int, septic_share: float = 0.5, seed: int = 7) -> list[Stay]:
    """A deterministic mix of septic and non-septic stays (the demo should show alerts)."""
    files = sorted(data_dir.glob("*.psv"))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(files))
    want_septic = int(round(n * septic_share))
    septic: list[Stay] = []
    other: list[Stay] = []
    for i in order:
        if len(septic) >= want_septic and len(other) >= n - want_septic:
            break
        (stay,) = load_stays([files[i]])
        bucket = septic if stay.septic else other
        if len(bucket) < (want_septic if stay.septic else n - want_septic):
            bucket.append(stay)
    return sorted(septic + other, key=lambda s: s.patient_id)


def _event_id(patient_id: str, hour: int, code: str) -> str:
    return hashlib.sha256(f"{patient_id}|{hour}|{code}".encode()).hexdigest()[:24]


def stay_events(stay: Stay, base: datetime, ward: str | None = None) -> Iterator[tuple[int, PatientEvent]]:
    """(file row, event) pairs in time order; ``base`` is the start of the file's row 0."""
    first = base + timedelta(minutes=30)
    for code in REPLAY_STATICS:
        value = stay.static.get(code, math.nan)
        if math.isfinite(value):
            yield (
                0,
                PatientEvent(
                    event_id=_event_id(stay.patient_id, 0, code),
                    patient_id=stay.patient_id,
                    observed_at=first,
                    source="replay",
                    kind="demographic",
                    code=code,
                    value=value,
                    unit=canonical_unit(code),
                    ward=ward,
                ),
            )
    for hour, row in enumerate(stay.matrix):
        at = base + timedelta(hours=hour, minutes=30)
        for idx in np.flatnonzero(~np.isnan(row)):
            code = DYNAMIC_CODES[idx]
            yield (
                hour,
                PatientEvent(
                    event_id=_event_id(stay.patient_id, hour, code),
                    patient_id=stay.patient_id,
                    observed_at=at,
                    source="replay",
                    kind="lab" if code in LABS else "vital",
                    code=code,
                    # as the file wrote it (float32 holds 0.21 as 0.2099999934: a room-air FiO2 sent so was
                    # refused out_of_range below 0.21, while vigil predict read it in range)
                    value=float(str(row[idx])),
                    unit=canonical_unit(code),
                    ward=ward,
                ),
            )


def discharge_event(
    stay: Stay, base: datetime, ward: str | None = None, code: str = DISCHARGE
) -> tuple[int, PatientEvent]:
    """(hour, event): the stay's end an hour after its last row (``models.stays``: the discharge, or
    ``transfer_out``, resolves the patient's alert and takes the patient off the ward view)."""
    return encounter_event(stay, base, len(stay.matrix), code, ward)


def encounter_event(
    stay: Stay, base: datetime, hour: int, code: str, ward: str | None = None, minutes: int = 0
) -> tuple[int, PatientEvent]:
    """(hour, event): a ``discharge`` or ``cancel_discharge`` of the stay ``minutes`` into ``hour``."""
    return (
        hour,
        PatientEvent(
            event_id=_event_id(stay.patient_id, hour, code),
            patient_id=stay.patient_id,
            observed_at=base + timedelta(hours=hour, minutes=minutes),
            source="replay",
            kind="encounter",
            code=code,
            value=1.0,
            unit=canonical_unit(code),
            ward=ward,
        ),
    )
