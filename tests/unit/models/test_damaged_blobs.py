"""A window or carry blob with one damaged byte reads, or raises what ``infra.redis`` takes for a
blob to start afresh from (ValueError, struct.error): an IndexError escaped it, and every batch with
the patient went to the dead letters as ``internal`` for the key's 7 days."""

from __future__ import annotations

import contextlib
import struct
import zlib
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from vigil.models.aggregates import Aggregates, scan
from vigil.models.stepping import StayCarry
from vigil.models.window import NewerTreatmentTable, PatientWindow
from vigil.schemas.codes import DYNAMIC_CODES, TREATMENTS
from vigil.schemas.events import PatientEvent

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)
READABLE_OR_REFUSED = (ValueError, struct.error, zlib.error)


def ev(code: str, value: float, hours: float, kind: str) -> PatientEvent:
    return PatientEvent(patient_id="p", observed_at=T0 + timedelta(hours=hours), kind=kind, code=code, value=value)


def full_window() -> PatientWindow:
    """Every part of the latest blob version: rows, demographics, an assessment before hour 0,
    treatments, position, ward, the stay's end and encounters, rows kept for a carry."""
    w = PatientWindow()
    w.apply(ev("GCS", 14, -1.5, "assessment"))
    w.apply(ev("Age", 70, 0.2, "demographic"))
    w.apply(ev("antibiotic", 1, -3, "treatment"))
    for h in range(52):
        w.apply(ev("HR", 80 + h % 7, h + 0.5, "vital"))
        if h % 6 == 0:
            w.apply(ev("Lactate", 2.5, h + 0.6, "lab"))
    w.apply(ev("crystalloid_ml", 1000, 1.2, "treatment"))
    w.advance(3, 1_234)
    w.ward, w.encounter, w.ended_s, w.ended_encounter, w.ended_by = "ICU-A", "enc-1", 1_800_000_000, "enc-1", "x"
    w.after_s = 1_700_000_000
    w.keep_unfolded(0)
    return w


def full_carry() -> StayCarry:
    rows = np.full((30, len(DYNAMIC_CODES)), np.nan, np.float32)
    rows[::2, DYNAMIC_CODES.index("HR")] = 90.0
    rows[::5, DYNAMIC_CODES.index("Lactate")] = 3.1
    agg = scan(Aggregates.empty(), rows, 0).at(29)
    hidden = np.arange(8, dtype=np.float32)
    return StayCarry(30, agg, hidden, 29, hidden + 1, 7)


def damaged(blob: bytes, every_value: bool = False) -> list[tuple[int, bytes]]:
    """Every blob with one byte replaced: by every other value, or (a long blob, to keep the test
    short) by its bits flipped, its top or bottom bit flipped, 0, 0xFF and values just past the
    code tables (9 treatments, 9 statics, 34 variables)."""
    out = []
    for i, old in enumerate(blob):
        values = range(256) if every_value else {old ^ 0xFF, old ^ 0x80, old ^ 0x01, 0, 0xFF, 9, 34, 35}
        out += [(i, blob[:i] + bytes((b,)) + blob[i + 1 :]) for b in values if b != old]
    return out


def treatment_code_bytes(w: PatientWindow) -> set[int]:
    """Offsets of the treatments' code bytes in ``w``'s blob (layout in models/window.py)."""
    pos = struct.calcsize("<BqiH") + sum(5 + 7 * len(r) for r in w.rows.values()) + 1 + 9 * len(w.static) + 1
    return {pos + 13 * k for k in range(len(w.treatments))}


def test_a_window_blob_with_one_damaged_byte_reads_or_is_refused_never_crashes() -> None:
    w = full_window()
    blob = w.to_bytes()
    assert blob[0] == PatientWindow._VERSION and PatientWindow.from_bytes(blob).rows == w.rows
    codes = treatment_code_bytes(w)
    newer = set()
    for i, bad in damaged(blob):
        try:
            PatientWindow.from_bytes(bad)
        except READABLE_OR_REFUSED:
            pass
        except NewerTreatmentTable:
            newer.add(i)  # a newer release's treatment, not taken for damage: left as it is
    # only where a treatment's code is, and only when the rest of the blob reads
    assert newer == codes


def test_a_carry_blob_with_one_damaged_byte_reads_or_is_refused_never_crashes() -> None:
    blob = full_carry().to_bytes()
    assert StayCarry.from_bytes(blob).to_bytes() == blob
    for _, bad in damaged(blob, every_value=True):
        with contextlib.suppress(*READABLE_OR_REFUSED):
            StayCarry.from_bytes(bad)


def test_indexes_past_their_tables_are_named() -> None:
    w = PatientWindow()
    w.apply(ev("Age", 70, 0.2, "demographic"))
    w.apply(ev("HR", 90, 0.5, "vital"))
    w.apply(ev("antibiotic", 1, 0.7, "treatment"))
    blob = bytearray(w.to_bytes())
    row_var = struct.calcsize("<BqiH") + 5
    static_code = row_var + 7 + 1
    (treatment_code,) = treatment_code_bytes(w)
    for at, value, error in [
        (row_var, len(DYNAMIC_CODES), "variable 34 of 34"),
        (static_code, 200, "static code 200"),
    ]:
        with pytest.raises(ValueError, match=error):
            PatientWindow.from_bytes(bytes(blob[:at]) + bytes((value,)) + bytes(blob[at + 1 :]))
    blob[treatment_code] = len(TREATMENTS)  # the next release's first new treatment
    with pytest.raises(NewerTreatmentTable, match=f"treatment {len(TREATMENTS)}"):
        PatientWindow.from_bytes(bytes(blob))
    assert not isinstance(NewerTreatmentTable(), ValueError)  # infra.redis would start such a window afresh
    agg = Aggregates.empty()
    agg.n[0] = 2
    agg_blob = bytearray(agg.to_bytes())
    agg_blob[2] = 0xF0
    with pytest.raises(ValueError, match="variable 240"):
        Aggregates.from_bytes(bytes(agg_blob))
