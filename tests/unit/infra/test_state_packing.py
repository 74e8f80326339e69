"""Window and carry blobs are deflated on their way to Redis; every reader unpacks them, and a
blob written before packing still reads (infra.redis.pack_state / unpack_state)."""

from datetime import UTC, datetime, timedelta

import numpy as np

from vigil.infra.redis import PACKED, _alert_or_new, _carry_or_none, pack_state, unpack_state
from vigil.models.aggregates import Aggregates
from vigil.models.alerting import PatientAlertState
from vigil.models.stepping import StayCarry
from vigil.models.window import WINDOW_HOURS, PatientWindow
from vigil.schemas.codes import DYNAMIC_CODES
from vigil.schemas.events import PatientEvent

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def dense_window(hours: int = 60, codes: int = 20) -> PatientWindow:
    """A long, densely measured stay: the blobs that once reached 3.6 KB in Redis."""
    rng = np.random.default_rng(3)
    w = PatientWindow()
    for h in range(hours):
        for code in DYNAMIC_CODES[:codes]:
            at = T0 + timedelta(hours=h, seconds=int(rng.integers(0, 3600)))
            w.apply(PatientEvent(patient_id="p", observed_at=at, kind="vital", code=code, value=float(rng.normal(80))))
    return w


def test_window_round_trips_packed_and_shrinks() -> None:
    window = dense_window()
    raw = window.to_bytes()
    packed = pack_state(raw)
    assert packed[0] == PACKED and len(packed) < len(raw)
    assert unpack_state(packed) == raw
    back = PatientWindow.from_bytes(unpack_state(packed))
    assert len(back.rows) == WINDOW_HOURS and back.to_bytes() == raw


def test_carry_round_trips_packed() -> None:
    carry = StayCarry(12, Aggregates.empty(), np.arange(64, dtype=np.float32), 40, -np.ones(64, dtype=np.float32))
    packed = pack_state(carry.to_bytes())
    back = _carry_or_none(packed)
    assert back is not None and back.boundary == 12 and back.closed == 40
    np.testing.assert_array_equal(back.h_boundary, carry.h_boundary)


def test_blobs_written_before_packing_still_read() -> None:
    raw = dense_window(hours=5).to_bytes()
    assert raw[0] != PACKED and unpack_state(raw) == raw
    assert unpack_state(raw.decode("latin-1")) is not None  # a str reply (decode_responses) passes too
    assert unpack_state(b'{"active": null}') == b'{"active": null}'  # alert and care JSON pass through
    assert unpack_state(None) is None and unpack_state(b"") == b""


def test_a_blob_that_would_grow_is_kept_as_is() -> None:
    noise = bytes((2,)) + np.random.default_rng(0).bytes(40)  # incompressible: deflate adds bytes
    assert pack_state(noise) == noise


def test_a_corrupt_packed_carry_is_rebuilt_not_fatal() -> None:
    assert _carry_or_none(bytes((PACKED,)) + b"not deflate") is None


def test_an_unreadable_alert_state_starts_afresh_not_fatal() -> None:
    state = PatientAlertState(patient_id="p", ward="W1", model_latched=True)
    assert _alert_or_new(state.to_bytes()) == state
    assert _alert_or_new(None) == PatientAlertState()
    assert _alert_or_new(b"{not json") == PatientAlertState()
    assert _alert_or_new(b'{"trend": "not a list"}') == PatientAlertState()
