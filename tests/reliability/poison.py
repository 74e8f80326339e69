"""Generated bad input for the ingest path: broken bytes, NaN/inf, absurd values, huge payloads,
wrong types, unknown units and codes, clock skew, out-of-order and duplicate events.

``poison_payload(rng)`` is a plain function of a ``random.Random`` so the same generator feeds
hypothesis (``st.randoms``) and the smaller batch sent through the real broker.
"""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from vigil.schemas.normalize import MAX_EVENT_BYTES

_CODES = [
    "HR",
    "Resp",
    "SBP",
    "O2Sat",
    "Temp",
    "MAP",
    "Lactate",
    "GCS",
    "ACVPU",
    "Age",
    "discharge",
    "cancel_discharge",
    "transfer_out",
    "cancel_transfer",
    "hr",
    "spo2",
    "temp_c",
    "Zzz",
    "",
    " ",
    "HR\x00",
    "DROP TABLE",
    "Créatinine",
    "x" * 300,
]
_UNITS = [
    "/min",
    "mm[Hg]",
    "%",
    "Cel",
    "[degF]",
    "K",
    "mmHg",
    "bpm",
    "parsecs",
    "furlong/fortnight",
    "",
    "kPa",
    "mg/dL",
    "mmol/L",
    "1",
    "°C",
    "\u202e",
    "u" * 100,
]
_KINDS = ["vital", "lab", "demographic", "assessment", "treatment", "encounter", "VITAL", "", "poison", 7, None]
_VALUES: list[Any] = [
    float("nan"),
    float("inf"),
    float("-inf"),
    1e308,
    -1e308,
    1e-320,
    0,
    -0.0,
    -5,
    1e6,
    2**64,
    -(2**63),
    "80",
    "eighty",
    None,
    True,
    [],
    {},
    [80],
    "NaN",
    "Infinity",
    37.0,
    80,
    98.6,
    120,
]


def _time(rng: random.Random, now: datetime) -> Any:
    choice = rng.randrange(10)
    if choice == 0:
        return (now + timedelta(hours=rng.choice([1, 24, 24 * 365]))).isoformat()  # clock skew (future)
    if choice == 1:
        return (now - timedelta(days=rng.choice([3, 365, 365 * 80]))).isoformat()  # far past
    if choice == 2:
        return now.replace(tzinfo=None).isoformat()  # no timezone
    if choice == 3:
        return rng.choice(["yesterday", "", "2024-13-45T99:99:99Z", 1700000000, None, "0000-00-00"])
    if choice == 4:
        return (now - timedelta(minutes=rng.randrange(1, 600))).isoformat()  # out of order
    return (now - timedelta(minutes=rng.randrange(1, 120))).isoformat()


def _event(rng: random.Random, now: datetime) -> dict[str, Any]:
    return {
        "event_id": f"fz{rng.getrandbits(64):016x}",
        "patient_id": f"fuzz-{rng.getrandbits(32):08x}",
        "observed_at": (now - timedelta(minutes=rng.randrange(1, 180))).isoformat(),
        "kind": "vital",
        "code": "HR",
        "value": float(rng.randrange(40, 180)),
        "unit": "/min",
        "source": "fuzz",
    }


def _mutate(rng: random.Random, event: dict[str, Any], now: datetime) -> dict[str, Any]:
    for _ in range(rng.randrange(1, 4)):
        field = rng.choice(
            [
                "value",
                "unit",
                "code",
                "kind",
                "observed_at",
                "patient_id",
                "extra",
                "drop",
                "event_id",
                "encounter",
            ]
        )
        if field == "value":
            event["value"] = rng.choice(_VALUES)
        elif field == "unit":
            event["unit"] = rng.choice(_UNITS)
        elif field == "code":
            event["code"] = rng.choice(_CODES)
        elif field == "kind":
            event["kind"] = rng.choice(_KINDS)
        elif field == "observed_at":
            event["observed_at"] = _time(rng, now)
        elif field == "patient_id":
            event["patient_id"] = rng.choice(
                ["", " ", "a b", "p" * 65, "\x07bell", "ünïcode-ok", 12345, None, "Mr John Smith"]
            )
        elif field == "extra":
            event[rng.choice(["name", "ssn", "__proto__", "value2"])] = "x"
        elif field == "drop":
            event.pop(rng.choice(list(event)), None)
        elif field == "event_id":
            event["event_id"] = rng.choice(["", "e" * 65, 42])
        else:
            event["encounter"] = rng.choice(["enc" * 30, 3.5, None])
    return event


def poison_payload(rng: random.Random, now: datetime | None = None) -> bytes:
    """One generated input: mostly mutated events, plus raw garbage, huge and duplicate payloads."""
    now = now or datetime.now(UTC)
    kind = rng.randrange(20)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 200))  # binary garbage (and b"")
    if kind == 1:
        return b"x" * (MAX_EVENT_BYTES + rng.randrange(1, 4096))  # huge payload
    if kind == 2:
        big = _event(rng, now)
        big["source"] = "s" * rng.randrange(300, 70_000)  # huge but JSON
        return json.dumps(big).encode()
    if kind == 3:
        return rng.choice([b"null", b"[]", b"{}", b"42", b'"HR"', b"{broken", b"\xff\xfe\x00", b"{" * 5000])
    if kind == 4:  # NaN/Infinity as JSON tokens (Python's json writes them)
        e = _event(rng, now)
        e["value"] = rng.choice([math.nan, math.inf, -math.inf])
        return json.dumps(e).encode()
    if kind == 5:  # a valid event, out of order: legitimately accepted
        e = _event(rng, now)
        e["observed_at"] = (now - timedelta(hours=rng.randrange(1, 40))).isoformat()
        return json.dumps(e).encode()
    if kind == 6:  # a discharge, a transfer out or their cancel, as sent or mutated: as safe as a measurement
        e = _event(rng, now)
        code = rng.choice(["discharge", "discharge", "cancel_discharge", "transfer_out", "cancel_transfer"])
        e.update(kind="encounter", code=code, value=1, unit="")
        return json.dumps(_mutate(rng, e, now) if rng.random() < 0.5 else e, allow_nan=True).encode()
    return json.dumps(_mutate(rng, _event(rng, now), now), allow_nan=True).encode()
