"""Property tests: whatever arrives, the decoders never raise, account for every input (events,
dead letters or explicitly ignored parts) and only ever emit canonical, range-checked events."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.schemas.codecs.care_units import Units
from vigil.schemas.codecs.fhir import decode_fhir
from vigil.schemas.codecs.hl7v2 import decode_hl7v2
from vigil.schemas.codecs.loinc import DecodeResult
from vigil.schemas.codes import CATALOGUE

FIXTURES = Path(__file__).parent / "fixtures"
FHIR_SAMPLES = [json.loads(p.read_text()) for p in sorted((FIXTURES / "fhir").glob("*.json"))]
HL7_SAMPLES = [p.read_bytes() for p in sorted((FIXTURES / "hl7v2").glob("*.hl7"))]
SITE = Units.of(["ICU-3"], away=["OR"])  # the fixtures' ICU: their A02 leaves it, their A12 goes back

# VIGIL_PROPERTY_EXAMPLES=5000 for a longer hunt (a few minutes); 300 keeps `make test` quick.
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("VIGIL_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def check(decoded: DecodeResult, source: str) -> None:
    """The contract every decoder output satisfies, once through the intake rules."""
    result = decoded.checked(datetime.now(UTC))
    assert decoded.accounted >= 1 and result.accounted == decoded.accounted, (
        "an input vanished without an event, a dead letter or an ignore"
    )
    for event in result.events:
        kind, unit, (low, high) = CATALOGUE[event.code]
        assert event.kind == kind and event.unit == unit and event.source == source
        assert low <= event.value <= high
        assert event.observed_at.tzinfo is not None
        assert len(event.event_id) == 32
    for item in result.rejected + result.ignored:
        assert item.reason and item.reason.replace("_", "").isalpha()
        assert item.reason != "internal", f"a decoder error, not a reason the sender can act on: {item.detail}"
    assert all(count > 0 for count in result.unknown_codes.values())


@PROPERTY_SETTINGS
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash_either_decoder(payload: bytes) -> None:
    check(decode_fhir(payload), "fhir")
    check(decode_hl7v2(payload), "hl7v2")


@PROPERTY_SETTINGS
@given(json_values)
def test_random_json_never_crashes_the_fhir_decoder(value: Any) -> None:
    check(decode_fhir(json.dumps(value).encode()), "fhir")


resource_types = st.sampled_from(
    ["Observation", "Bundle", "MedicationAdministration", "Procedure", "Patient", "Encounter", "Basic"]
)


@PROPERTY_SETTINGS
@given(
    resource_types,
    st.dictionaries(
        st.sampled_from(
            [
                "id",
                "status",
                "code",
                "subject",
                "effectiveDateTime",
                "effectivePeriod",
                "valueQuantity",
                "component",
                "entry",
                "type",
                "performedDateTime",
                "medicationCodeableConcept",
                "dosage",
                "hasMember",
                "meta",
                "location",
                "period",
                "class",
            ]
        ),
        json_values,
        max_size=8,
    ),
)
def test_random_fields_on_known_resource_types(resource_type: str, fields: dict[str, Any]) -> None:
    payload = json.dumps({"resourceType": resource_type, **fields}).encode()
    check(decode_fhir(payload), "fhir")
    check(decode_fhir(payload, SITE), "fhir")  # an Encounter's location history is read


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            paths += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            paths += _paths(child, (*prefix, index))
    return paths


@st.composite
def mutated_fhir(draw: st.DrawFn) -> dict[str, Any]:
    resource = json.loads(json.dumps(draw(st.sampled_from(FHIR_SAMPLES))))
    for _ in range(draw(st.integers(1, 4))):
        paths = [p for p in _paths(resource) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = resource
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()):
            parent[path[-1]] = draw(json_values)
        elif isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    return resource


@PROPERTY_SETTINGS
@given(mutated_fhir())
def test_mutated_spec_examples_map_or_dead_letter(resource: dict[str, Any]) -> None:
    check(decode_fhir(json.dumps(resource).encode()), "fhir")
    check(decode_fhir(json.dumps(resource).encode(), SITE), "fhir")


@st.composite
def byte_mutation(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, max(0, len(data) - 1)))
        operation = draw(st.sampled_from(["flip", "insert", "delete"]))
        if operation == "flip" and data:
            data[position] = draw(st.integers(0, 255))
        elif operation == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif data:
            del data[position]
    return bytes(data)


@PROPERTY_SETTINGS
@given(byte_mutation([json.dumps(s).encode() for s in FHIR_SAMPLES]))
def test_byte_mutated_fhir_never_crashes(payload: bytes) -> None:
    check(decode_fhir(payload), "fhir")
    check(decode_fhir(payload, SITE), "fhir")


@PROPERTY_SETTINGS
@given(byte_mutation(HL7_SAMPLES))
def test_byte_mutated_hl7v2_never_crashes(payload: bytes) -> None:
    check(decode_hl7v2(payload), "hl7v2")
    check(decode_hl7v2(payload, units=SITE), "hl7v2")


hl7_text = st.text(alphabet=st.sampled_from(list("AZaz09.+-<>^~&\\| \rX")), max_size=24)


@st.composite
def field_mutated_hl7(draw: st.DrawFn) -> bytes:
    segments = draw(st.sampled_from(HL7_SAMPLES)).decode("utf-8").splitlines()
    for _ in range(draw(st.integers(1, 5))):
        index = draw(st.integers(0, len(segments) - 1))
        operation = draw(st.sampled_from(["field", "drop", "duplicate", "truncate"]))
        fields = segments[index].split("|")
        if operation == "field":
            position = draw(st.integers(0, len(fields) + 3))
            fields += [""] * (position + 1 - len(fields))
            fields[position] = draw(hl7_text)
            segments[index] = "|".join(fields)
        elif operation == "drop" and len(segments) > 1:
            segments.pop(index)
        elif operation == "duplicate":
            segments.insert(index, segments[index])
        else:
            segments[index] = "|".join(fields[: draw(st.integers(0, len(fields)))])
    separator = draw(st.sampled_from(["\r", "\n", "\r\n"]))
    framed = draw(st.booleans())
    body = separator.join(segments).encode("utf-8")
    return b"\x0b" + body + b"\x1c\x0d" if framed else body


@PROPERTY_SETTINGS
@given(field_mutated_hl7())
def test_field_mutated_hl7v2_maps_or_dead_letters(payload: bytes) -> None:
    check(decode_hl7v2(payload), "hl7v2")
    check(decode_hl7v2(payload, units=SITE), "hl7v2")


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(HL7_SAMPLES))
def test_hl7v2_fixtures_are_idempotent(payload: bytes) -> None:
    assert [e.event_id for e in decode_hl7v2(payload).events] == [e.event_id for e in decode_hl7v2(payload).events]
    twice = [decode_hl7v2(payload, units=SITE).events for _ in range(2)]
    assert [e.event_id for e in twice[0]] == [e.event_id for e in twice[1]]
