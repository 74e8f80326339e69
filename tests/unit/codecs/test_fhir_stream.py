"""The streaming FHIR decoder (one Bundle entry at a time) maps exactly what ``decode_fhir`` maps,
and gives each rejected entry only its own bytes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from test_codec_properties import FHIR_SAMPLES, PROPERTY_SETTINGS, check, json_values, mutated_fhir

from vigil.schemas.codecs.fhir import decode_fhir
from vigil.schemas.codecs.fhir_stream import MAX_JSON_DEPTH, decode_fhir_stream, scan_fhir
from vigil.schemas.codecs.loinc import DecodeResult


def streamed(payload: bytes, max_entries: int = 10_000) -> tuple[DecodeResult, list[Any]]:
    merged, outcomes = DecodeResult(), list(decode_fhir_stream(io.BytesIO(payload), max_entries))
    for item in outcomes:
        merged.extend(item.result)
    return merged, outcomes


def observation(i: int, subject: str = "Patient/p1", code: str = "8867-4") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"o{i}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": subject},
        "effectiveDateTime": "2026-01-01T10:00:00Z",
        "valueQuantity": {"value": 80 + i % 20, "system": "http://unitsofmeasure.org", "code": "/min"},
    }


def bundle(*resources: dict[str, Any], full_urls: list[str] | None = None) -> bytes:
    entries = [{"resource": r} for r in resources]
    for entry, url in zip(entries, full_urls or [], strict=False):
        entry["fullUrl"] = url
    return json.dumps({"resourceType": "Bundle", "type": "batch", "entry": entries}).encode()


def test_spec_examples_map_the_same_event_ids_as_the_whole_decoder() -> None:
    for sample in FHIR_SAMPLES:
        payload = json.dumps(sample).encode()
        whole, (merged, _) = decode_fhir(payload), streamed(payload)
        assert [e.event_id for e in merged.events] == [e.event_id for e in whole.events]
        assert [r.reason for r in merged.rejected] == [r.reason for r in whole.rejected]


def test_each_rejected_entry_carries_only_itself() -> None:
    bad = [observation(i, code="0000-0") for i in range(50)]  # unmapped codes
    payload = bundle(*bad)
    merged, outcomes = streamed(payload)
    assert len(merged.rejected) == 50 and [o.index for o in outcomes] == list(range(50))
    for item, resource in zip(outcomes, bad, strict=True):
        assert json.loads(item.original) == {"resource": resource}
        assert len(item.original) < len(payload) / 40


def test_a_local_patient_reference_resolves_when_the_patient_comes_last() -> None:
    payload = bundle(
        observation(1, subject="urn:uuid:pat"),
        {"resourceType": "Patient", "id": "mrn-7"},
        full_urls=["urn:uuid:obs", "urn:uuid:pat"],
    )
    merged, _ = streamed(payload)
    assert [e.patient_id for e in merged.events] == ["mrn-7"] == [e.patient_id for e in decode_fhir(payload).events]


def test_entries_over_the_limit_are_counted_without_decoding() -> None:
    payload = bundle(*(observation(i) for i in range(30)))
    scan = scan_fhir(io.BytesIO(payload), max_entries=10)
    assert scan.is_bundle and scan.over_limit and scan.entries == 11
    merged, outcomes = streamed(payload, max_entries=10)
    assert [r.reason for r in merged.rejected] == ["too_large"] and not merged.events
    assert "limit 10" in merged.rejected[0].detail and outcomes[0].index is None


def test_a_payload_the_stream_cannot_read_is_refused_not_decoded_whole() -> None:
    """One NaN (not JSON, but read by the whole-payload decoder) made a Bundle of 30 entries, over a
    limit of 10, publish all 30: the stream's entry limit never applied."""
    payload = bundle(*(observation(i) for i in range(30))).replace(b'"value": 80', b'"value": NaN', 1)
    assert b"NaN" in payload
    merged, outcomes = streamed(payload, max_entries=10)
    assert not merged.events and [r.reason for r in merged.rejected] == ["invalid_json"]
    assert outcomes[0].index is None and outcomes[0].original == payload  # the whole, for its dead letter
    # valid JSON the stream's parser refuses (an integer past 64 bits): read whole, its limit kept
    big = bundle(*(observation(i) for i in range(30))).replace(b'"value": 80', b'"value": 9223372036854775808', 1)
    scan = scan_fhir(io.BytesIO(big), max_entries=10)
    assert scan.is_bundle and scan.over_limit and scan.entries == 11
    merged, _ = streamed(big, max_entries=10)
    assert [r.reason for r in merged.rejected] == ["too_large"] and not merged.events
    merged, _ = streamed(big, max_entries=30)
    assert len(merged.events) == 30  # decoded whole as before (the intake's range check refuses the one)


@PROPERTY_SETTINGS
@given(json_values)
def test_random_json_never_crashes_the_streaming_decoder(value: Any) -> None:
    check(streamed(json.dumps(value).encode())[0], "fhir")


@PROPERTY_SETTINGS
@given(st.lists(mutated_fhir(), min_size=1, max_size=6))
def test_mutated_bundles_stream_as_they_decode(resources: list[dict[str, Any]]) -> None:
    payload = bundle(*resources)
    merged, outcomes = streamed(payload)
    check(merged, "fhir")
    whole = decode_fhir(payload)
    # the whole decoder did not refuse the Bundle's envelope, and the payload is JSON (json.dumps
    # writes inf as Infinity, which the whole decoder reads and the stream refuses)
    if (not whole.rejected or whole.events) and b"Infinity" not in payload and b"NaN" not in payload:
        assert {e.event_id for e in merged.events} >= {e.event_id for e in whole.events}
    for item in outcomes:
        assert bool(item.original) == bool(item.result.rejected)


@PROPERTY_SETTINGS
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash_the_streaming_decoder(payload: bytes) -> None:
    check(streamed(payload)[0], "fhir")


def test_the_streamed_bundle_reads_an_encounters_move_with_the_sites_units() -> None:
    """The worker's and the HTTP intake's decoder: the site's units reach each entry."""
    from test_codec_fhir import ICU, MICU_TO_WARD, moved

    from vigil.schemas.codecs.care_units import Units

    payload = bundle(observation(1), moved(*MICU_TO_WARD))
    merged = DecodeResult()
    for item in decode_fhir_stream(io.BytesIO(payload), units=ICU):
        merged.extend(item.result)
    assert [e.code for e in merged.events] == ["HR", "transfer_out"]
    assert [e.code for e in merged.events] == [e.code for e in decode_fhir(payload, ICU).events]
    unset, _ = streamed(payload)  # the default: moves are context
    assert [e.code for e in unset.events] == ["HR"] and decode_fhir(payload, Units()).ignored


def test_json_nested_past_the_limit_is_refused_whole_or_in_a_bundle() -> None:
    for depth, refused in ((150, False), (MAX_JSON_DEPTH - 1, False), (MAX_JSON_DEPTH + 1, True)):
        alone = b'{"resourceType":"Observation","x":' + b"[" * depth + b"]" * depth + b"}"
        merged, _ = streamed(alone)
        assert (merged.rejected[0].reason == "invalid_json") is refused, depth
        inner = b'{"a":' * (depth - 3) + b"1" + b"}" * (depth - 3)  # under the Bundle, its entry array and entry
        merged, outcomes = streamed(
            b'{"resourceType":"Bundle","type":"collection","entry":[{"resource":' + inner + b"}]}"
        )
        assert len(merged.rejected) == 1 and (merged.rejected[0].reason == "invalid_json") is refused, depth
        assert outcomes[0].original_bytes()  # its bytes for the dead letter, whichever way it was refused


def test_deep_nesting_costs_neither_memory_nor_time() -> None:
    # ijson.parse kept a prefix per open level as long as its path: 20,000 levels (40 kB) took 1 GB
    # and 40,000 over 3 GB, a poison pill that killed the worker on every redelivery
    script = (
        "import io, resource\n"
        "from vigil.schemas.codecs.fhir_stream import decode_fhir_stream\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for n in (20_000, 40_000):\n"
        "    deep = b'{\"resourceType\":\"Bundle\",\"entry\":[' + b'[' * n + b']' * n + b']}'\n"
        "    out = list(decode_fhir_stream(io.BytesIO(deep)))\n"
        "    assert out[0].result.rejected[0].reason == 'invalid_json'\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert int(done.stdout.split()[-1]) < 100  # MB more than the imports took


def test_only_the_top_level_entry_array_holds_entries() -> None:
    # entries are routed by the parser's own path: an "entry" object's "item", or an "entry" array
    # deeper down, is not the Bundle's entry list
    payload = json.dumps({"resourceType": "Bundle", "type": "batch", "entry": {"item": observation(1)}}).encode()
    assert scan_fhir(io.BytesIO(payload)).problem is not None
    merged, _ = streamed(payload)
    assert [r.detail for r in merged.rejected] == ["Bundle.entry is not a list"] and not merged.events
    nested = {"resourceType": "Bundle", "type": "batch", "meta": {"entry": [observation(2)]}, "entry": []}
    merged, _ = streamed(json.dumps(nested).encode())
    assert not merged.events


def test_a_payload_refused_whole_carries_all_of_it_for_its_dead_letter() -> None:
    """Too deep, over the entry limit, or a Bundle whose envelope is refused: the outcome carried the
    first 64 KiB, and its dead letter called that prefix the whole original (truncated false, the
    prefix's size and SHA-256), which a replay then sent as a cut, unparseable Bundle."""
    import hashlib
    from datetime import UTC, datetime

    from vigil.infra.deadletters import TRUNCATED, Letter, resend_of
    from vigil.schemas.deadletter import DeadLetter, Source, one_per_input

    entries = [observation(i) for i in range(400)]
    bad_envelope = json.loads(bundle(*entries)) | {"total": "many"}
    deep = b'{"resourceType":"Bundle","entry":[' + b"[" * 300 + b"]" * 300 + b"]}" + b" " * 100_000
    for payload, max_entries in [
        (json.dumps(bad_envelope).encode(), 10_000),
        (bundle(*entries), 10),
        (deep, 10_000),
    ]:
        assert len(payload) > 1 << 16
        (item,) = list(decode_fhir_stream(io.BytesIO(payload), max_entries))
        assert item.index is None and item.result.rejected and item.original_bytes() == payload
        rejected = one_per_input(item.result.rejected).at(Source("http:/fhir", original=item.original_bytes()))
        letter = DeadLetter.of(rejected, datetime.now(UTC))
        assert letter.truncated and letter.original_size == len(payload)
        assert letter.original_sha256 == hashlib.sha256(payload).hexdigest()
        assert resend_of(Letter(0, 1, b"http-fhir", letter)) == TRUNCATED  # never a cut Bundle


def test_a_bundle_naming_its_type_after_its_entries_is_held_to_the_limit() -> None:
    """The count stops past the limit, before a ``resourceType`` written after the ``entry`` array:
    such a Bundle was not known to be one, and was decoded whole, 1,500 entries past a limit of 1,000."""
    entries = [{"resource": observation(i)} for i in range(30)]
    payload = json.dumps({"entry": entries, "type": "batch", "resourceType": "Bundle"}).encode()
    scan = scan_fhir(io.BytesIO(payload), max_entries=10)
    assert scan.over_limit and scan.entries == 11
    merged, outcomes = streamed(payload, max_entries=10)
    assert [r.reason for r in merged.rejected] == ["too_large"] and not merged.events
    assert "limit 10" in merged.rejected[0].detail and outcomes[0].index is None
    merged, _ = streamed(payload, max_entries=30)  # within the limit it is a Bundle like any other
    assert len(merged.events) == 30


def test_a_bundle_the_stream_cannot_read_gives_each_rejected_entry_only_itself() -> None:
    """One integer past 64 bits (valid JSON the stream's parser refuses) had the Bundle decoded whole,
    and the dead letter of its one bad entry carried every other patient's entries."""
    good = [observation(i, subject=f"Patient/mrn-{i}") for i in range(20)]
    bad = observation(99, code="0000-0") | {"valueQuantity": {"value": 10**30, "code": "/min"}}
    payload = bundle(*good, bad)
    merged, outcomes = streamed(payload)
    assert scan_fhir(io.BytesIO(payload)).parsed_entries is not None  # the stream could not read it
    assert len(merged.events) == 20 and [r.reason for r in merged.rejected] == ["unmapped_code"]
    assert [o.index for o in outcomes] == list(range(21))
    (rejected,) = [o for o in outcomes if o.result.rejected]
    assert json.loads(rejected.original_bytes()) == {"resource": bad} and b"mrn-" not in rejected.original_bytes()
    assert [e.event_id for e in merged.events] == [e.event_id for e in decode_fhir(payload).events]


def test_a_bundle_over_the_payload_limit_is_refused_as_the_whole_decoder_refuses_it() -> None:
    """The worker's path (the stream) decoded a 9,437,605-byte Bundle that ``vigil convert``
    (``decode_fhir``) refused ``too_large``: what the integrator was told would not be scored was."""
    from vigil.schemas.codecs.fhir import MAX_PAYLOAD_BYTES

    padded = observation(1) | {"note": [{"text": "x" * MAX_PAYLOAD_BYTES}]}
    payload = bundle(padded)
    merged, outcomes = streamed(payload)
    assert not merged.events and merged.rejected == decode_fhir(payload).rejected
    assert [(r.reason, r.detail) for r in merged.rejected] == [
        ("too_large", f"payload is {len(payload)} bytes (limit {MAX_PAYLOAD_BYTES})")
    ]
    assert outcomes[0].index is None and outcomes[0].original_bytes() == payload  # the whole, for its dead letter
    with_note = bundle(observation(1) | {"note": [{"text": ""}]})
    at_limit = bundle(observation(1) | {"note": [{"text": "x" * (MAX_PAYLOAD_BYTES - len(with_note))}]})
    assert len(at_limit) == MAX_PAYLOAD_BYTES
    assert [e.code for e in streamed(at_limit)[0].events] == ["HR"]  # the limit itself is allowed, as decode_fhir's
