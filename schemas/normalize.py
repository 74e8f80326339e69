"""Ingest rules (pure): raw bytes -> validated, canonical ``PatientEvent`` or ``Rejected``.

Errors are data: nothing here raises on bad input; the ingest agent sends every ``Rejected``
to the dead-letter topic with the original bytes.
"""

from __future__ import annotations

import hashlib
from codecs import BOM_UTF8
from datetime import datetime

from pydantic import ValidationError

from vigil.schemas.codes import CATALOGUE
from vigil.schemas.deadletter import Rejected, error_location
from vigil.schemas.events import MAX_FUTURE_SKEW, PatientEvent, parse_event_json
from vigil.schemas.units import UnitError, to_canonical

# Default size limit of one raw event (``settings.ingest.max_event_bytes``). A Vigil event is
# ~300 bytes; anything this large is a producer bug or an attack, and its dead letter must still fit
# (schemas.deadletter.MAX_DEAD_LETTER_BYTES keeps a whole copy of anything up to this size).
MAX_EVENT_BYTES = 64 * 1024

# Friendly aliases an integration may send instead of the canonical (PhysioNet) code.
CODE_ALIASES: dict[str, str] = {
    "heart_rate": "HR",
    "hr": "HR",
    "pulse": "HR",
    "spo2": "O2Sat",
    "SpO2": "O2Sat",
    "o2sat": "O2Sat",
    "temp": "Temp",
    "temperature": "Temp",
    "temp_c": "Temp",
    "sbp": "SBP",
    "systolic_bp": "SBP",
    "dbp": "DBP",
    "diastolic_bp": "DBP",
    "map": "MAP",
    "mean_arterial_pressure": "MAP",
    "resp": "Resp",
    "rr": "Resp",
    "respiratory_rate": "Resp",
    "etco2": "EtCO2",
    "fio2": "FiO2",
    "lactate": "Lactate",
    "wbc": "WBC",
    "creatinine": "Creatinine",
    "platelets": "Platelets",
    "bilirubin": "Bilirubin_total",
    "gcs": "GCS",
    "acvpu": "ACVPU",
    "avpu": "ACVPU",
    "on_oxygen": "SupplementalO2",
}


# Scales and flags with no value between their steps: a GCS of 14.5 or an ACVPU of 2.5 is a feed's
# error (a mean, a mis-mapped field), never a patient's state
WHOLE_NUMBERS = {
    "GCS": "3 to 15",
    "ACVPU": "0 alert, 1 new confusion, 2 voice, 3 pain, 4 unresponsive",
    "SupplementalO2": "0 or 1",
    "HypercapnicRespFailure": "0 or 1",
}


def canonical_code(code: str) -> str | None:
    if code in CATALOGUE:
        return code
    return CODE_ALIASES.get(code) or CODE_ALIASES.get(code.lower())


def normalize_event(event: PatientEvent, now: datetime) -> PatientEvent | Rejected:
    """Map the code to its canonical form, convert the value to the canonical unit and check
    that it is physiologically possible and not from the future (clock skew)."""
    code = canonical_code(event.code)
    if code is None:
        return Rejected("unknown_code", f"code {event.code[:64]!r} is not mapped")
    kind, unit, (low, high) = CATALOGUE[code]
    if event.kind != kind:
        return Rejected("schema", f"code {code} is a {kind}, not a {event.kind}")
    try:
        value = to_canonical(code, event.value, event.unit)
    except UnitError as exc:
        return Rejected("unit", str(exc))
    if not low <= value <= high:
        # the detail names the code and range, never the patient's value
        return Rejected("out_of_range", f"{code} outside plausible range [{low}, {high}] {unit}")
    if code in WHOLE_NUMBERS and not value.is_integer():
        return Rejected("out_of_range", f"{code} takes whole values ({WHOLE_NUMBERS[code]})")
    if event.observed_at > now + MAX_FUTURE_SKEW:
        return Rejected("clock_skew", "observed_at is in the future beyond the allowed skew")
    return event.model_copy(update={"code": code, "value": value, "unit": unit})


def decode_raw_event(payload: bytes | None, now: datetime, max_bytes: int = MAX_EVENT_BYTES) -> PatientEvent | Rejected:
    if payload is None or len(payload) == 0:
        return Rejected("empty", "empty message")
    if len(payload) > max_bytes:
        return Rejected("too_large", f"message of {len(payload)} bytes is over the limit of {max_bytes} bytes")
    try:
        # a UTF-8 byte-order mark before the JSON (a file saved by a Windows editor, then produced) is
        # skipped, as the FHIR and HL7v2 decoders skip it: with it the whole event was invalid_json
        event = parse_event_json(payload := payload.removeprefix(BOM_UTF8))
    except ValidationError as exc:
        errors = exc.errors()
        if not errors:
            return Rejected("schema", "invalid")
        first = errors[0]
        kind = "invalid_json" if first["type"] == "json_invalid" else "schema"
        # a key the event does not know is the sender's text (a patient's name or MRN): never quoted
        where = ".".join(str(part) for part in error_location(first))
        return Rejected(kind, f"{where}: {first['msg']}"[:300])
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejected("invalid_json", type(exc).__name__)
    if "event_id" not in event.model_fields_set:
        # no id from the producer: derive it from the bytes (after a byte-order mark), so a re-sent
        # copy is recognised, with a mark or without
        event = event.model_copy(update={"event_id": hashlib.sha256(payload).hexdigest()[:32]})
    return normalize_event(event, now)
