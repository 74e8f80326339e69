"""A UTF-8 byte-order mark before a payload (a file saved by a Windows editor, an EHR's export) is
skipped on every decoder path: HL7 v2 (and the MLLP ACK), FHIR whole and streamed. With it, the whole
file was one dead letter: ``parse_error`` "no MSH segment", or ``invalid_json``."""

from __future__ import annotations

import io
import json
from codecs import BOM_UTF8
from pathlib import Path
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st
from test_codec_properties import (
    FHIR_SAMPLES,
    HL7_SAMPLES,
    PROPERTY_SETTINGS,
    SITE,
    byte_mutation,
    field_mutated_hl7,
    mutated_fhir,
)

from vigil.schemas.codecs.fhir import decode_fhir
from vigil.schemas.codecs.fhir_stream import decode_fhir_stream, scan_fhir
from vigil.schemas.codecs.hl7v2 import decode_hl7v2
from vigil.schemas.codecs.loinc import DecodeResult
from vigil.schemas.codecs.mllp import ack, control_id

FIXTURES = Path(__file__).parent / "fixtures"
ORU = (FIXTURES / "hl7v2" / "oru_r01_vitals.hl7").read_bytes()
VITALS = (FIXTURES / "fhir" / "bundle-searchset-vitals.json").read_bytes()
FHIR_PAYLOADS = [json.dumps(sample, indent=2).encode() for sample in FHIR_SAMPLES]


def streamed(payload: bytes) -> list[tuple[int | None, DecodeResult]]:
    return [(item.index, item.result) for item in decode_fhir_stream(io.BytesIO(payload), units=SITE)]


def _bundle_of(resources: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": r} for r in resources]}
    ).encode()


def test_an_hl7v2_file_with_a_byte_order_mark_decodes_as_without_it() -> None:
    assert decode_hl7v2(BOM_UTF8 + ORU).events
    for sample in HL7_SAMPLES:
        plain = decode_hl7v2(sample, units=SITE)
        assert decode_hl7v2(BOM_UTF8 + sample, units=SITE) == plain
        assert decode_hl7v2("\ufeff" + sample.decode("utf-8"), units=SITE) == plain


def test_a_byte_order_mark_does_not_turn_an_iso_8859_1_message_into_mojibake() -> None:
    """The mark is skipped before the character set is chosen: a message that is not UTF-8 after it is
    read as ISO 8859-1, and the mark's bytes were its first three characters, before MSH."""
    latin = ORU.replace(b"\r", b"\rNTE|1||Temp\xe9rature\r", 1)
    assert decode_hl7v2(BOM_UTF8 + latin) == decode_hl7v2(latin)
    assert decode_hl7v2(latin).events


def test_the_mllp_ack_names_the_control_id_after_a_byte_order_mark() -> None:
    assert control_id(BOM_UTF8 + ORU) == control_id(ORU) != ""
    assert f"|{control_id(ORU)}|".encode() in ack(BOM_UTF8 + ORU, "AA", "")


def test_a_fhir_payload_with_a_byte_order_mark_decodes_as_without_it() -> None:
    assert decode_fhir(BOM_UTF8 + VITALS).events
    for payload in FHIR_PAYLOADS:
        plain = decode_fhir(payload, SITE)
        assert decode_fhir(BOM_UTF8 + payload, SITE) == plain
        assert decode_fhir("\ufeff" + payload.decode("utf-8"), SITE) == plain


def test_a_streamed_fhir_payload_with_a_byte_order_mark_decodes_as_without_it() -> None:
    """The worker's and ``POST /fhir``'s path: a Bundle entry by entry, a resource whole, and a Bundle
    the stream's parser cannot read (an integer past 64 bits) parsed whole."""
    vitals = json.loads(VITALS)
    wide = _bundle_of([*(e["resource"] for e in vitals["entry"]), {"resourceType": "Basic", "id": "x", "n": 10**30}])
    assert scan_fhir(io.BytesIO(BOM_UTF8 + wide)).parsed_entries is not None  # parsed whole
    for payload in [*FHIR_PAYLOADS, wide]:
        assert streamed(BOM_UTF8 + payload) == streamed(payload)
    assert any(result.events for _, result in streamed(BOM_UTF8 + wide))


def test_what_is_refused_whole_keeps_its_byte_order_mark_for_its_dead_letter() -> None:
    """The dead letter is the payload as sent (its size and SHA-256 are the producer's copy's)."""
    payload = BOM_UTF8 + b'{"resourceType": "Bundle", "type": "batch", "entry": [1, '  # cut short
    (item,) = list(decode_fhir_stream(io.BytesIO(payload)))
    assert [r.reason for r in item.result.rejected] == ["invalid_json"] and item.original_bytes() == payload
    alone = BOM_UTF8 + json.dumps({"resourceType": "Observation", "status": "final"}).encode()
    (item,) = list(decode_fhir_stream(io.BytesIO(alone)))
    assert item.result.rejected and item.original_bytes() == alone


def _without_a_mark(payload: bytes) -> bytes:
    assume(not payload.startswith(BOM_UTF8))  # a second mark is not skipped: one is what editors write
    return payload


@PROPERTY_SETTINGS
@given(st.one_of(byte_mutation(HL7_SAMPLES), field_mutated_hl7()))
def test_a_byte_order_mark_changes_nothing_an_hl7v2_message_decodes_to(payload: bytes) -> None:
    payload = _without_a_mark(payload)
    assert decode_hl7v2(BOM_UTF8 + payload, units=SITE) == decode_hl7v2(payload, units=SITE)


@PROPERTY_SETTINGS
@given(st.one_of(byte_mutation(FHIR_PAYLOADS), mutated_fhir().map(lambda r: json.dumps(r).encode())))
def test_a_byte_order_mark_changes_nothing_a_fhir_payload_decodes_to(payload: bytes) -> None:
    payload = _without_a_mark(payload)
    assert decode_fhir(BOM_UTF8 + payload, SITE) == decode_fhir(payload, SITE)
    assert streamed(BOM_UTF8 + payload) == streamed(payload)


@PROPERTY_SETTINGS
@given(st.lists(mutated_fhir(), min_size=1, max_size=4))
def test_a_byte_order_mark_changes_nothing_a_streamed_bundle_decodes_to(resources: list[dict[str, Any]]) -> None:
    payload = _bundle_of(resources)
    assert streamed(BOM_UTF8 + payload) == streamed(payload)
