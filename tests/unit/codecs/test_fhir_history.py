"""A FHIR ``history`` Bundle lists each resource's versions newest first (R4 http.html#history). Each
version had its own event id, and the patient's window keeps the value that arrives last for the
same second: the original lactate of 12.0 overwrote its amendment to 1.2. Only the newest version
of each resource is read now (the others ignored ``superseded_version``, not dead-lettered), and a
resource whose newest version is a deletion is not read at all."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from vigil.models.window import PatientWindow
from vigil.schemas.codecs.fhir import decode_fhir
from vigil.schemas.codecs.fhir_stream import decode_fhir_stream
from vigil.schemas.codecs.loinc import DecodeResult
from vigil.schemas.normalize import normalize_event

NOW = datetime(2024, 3, 15, 23, tzinfo=UTC)
UCUM = "http://unitsofmeasure.org"


def lactate(value: float, status: str, version: str | None, updated: str | None = None, rid: str = "lac1") -> dict:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "code": {"coding": [{"system": "http://loinc.org", "code": "2524-7"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-15T14:25:00Z",
        "valueQuantity": {"value": value, "system": UCUM, "code": "mmol/L"},
    }
    meta = {k: v for k, v in (("versionId", version), ("lastUpdated", updated)) if v is not None}
    if meta:
        resource["meta"] = meta
    return resource


def entry(resource: dict[str, Any], method: str = "PUT") -> dict[str, Any]:
    return {
        "fullUrl": f"http://ehr/fhir/Observation/{resource['id']}",
        "resource": resource,
        "request": {"method": method, "url": f"Observation/{resource['id']}"},
        "response": {"status": "200"},
    }


def deletion(rid: str = "lac1", version: str | None = None, modified: str | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"status": "204"}
    if version is not None:
        response["etag"] = f'W/"{version}"'
    if modified is not None:
        response["lastModified"] = modified
    return {"request": {"method": "DELETE", "url": f"Observation/{rid}"}, "response": response}


def history(*entries: dict[str, Any], kind: str = "history") -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": kind, "entry": list(entries)}).encode()


def streamed(payload: bytes) -> DecodeResult:
    merged = DecodeResult()
    for item in decode_fhir_stream(io.BytesIO(payload)):
        merged.extend(item.result)
    return merged


DECODERS = [pytest.param(decode_fhir, id="whole"), pytest.param(streamed, id="streamed")]


@pytest.mark.parametrize("decode", DECODERS)
def test_only_the_newest_version_reaches_the_window(decode: Any) -> None:
    payload = history(entry(lactate(1.2, "amended", "2")), entry(lactate(12.0, "final", "1"), "POST"))
    result = decode(payload).checked(NOW)
    assert [(e.code, e.value) for e in result.events] == [("Lactate", 1.2)] and result.rejected == []
    (older,) = result.ignored
    assert older.reason == "superseded_version" and "entry[1] Observation/lac1" in older.detail
    window = PatientWindow()
    for event in result.events:
        checked = normalize_event(event, NOW)
        assert not isinstance(checked, type(older))
        window.apply(checked)
    assert window.current_values()["Lactate"] == pytest.approx(1.2)


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    ("versions", "newest"),
    [
        ((("1", None), ("3", None), ("2", None)), 2.0),  # by versionId, in any order
        ((("10", None), ("9", None)), 1.0),  # as numbers, not text
        (((None, "2024-03-15T15:00:00Z"), (None, "2024-03-15T16:00:00+01:00"), (None, "2024-03-15T15:30:00Z")), 3.0),
        ((("a", None), ("b", None)), 1.0),  # opaque ids, no time: the first listed (the newest, per FHIR)
        ((("2", None), (None, None)), 1.0),  # not every version numbered: the first listed
    ],
)
def test_the_newest_version_is_chosen_by_version_then_time_then_order(
    decode: Any, versions: tuple[tuple[str | None, str | None], ...], newest: float
) -> None:
    """``newest``: the position of the version read (each version's value is its position)."""
    entries = [entry(lactate(float(n), "final", v, t)) for n, (v, t) in enumerate(versions, 1)]
    result = decode(history(*entries))
    assert [e.value for e in result.events] == [newest]
    assert [i.reason for i in result.ignored] == ["superseded_version"] * (len(versions) - 1)


@pytest.mark.parametrize("decode", DECODERS)
def test_each_resource_keeps_its_own_newest_version(decode: Any) -> None:
    payload = history(
        entry(lactate(2.0, "final", "1", rid="lac2")),
        entry(lactate(1.2, "amended", "2")),
        entry(lactate(12.0, "final", "1")),
    )
    assert sorted(e.value for e in decode(payload).events) == [1.2, 2.0]


@pytest.mark.parametrize("decode", DECODERS)
@pytest.mark.parametrize(
    "deleted",
    [
        deletion(),  # no version: the first listed is the newest
        deletion(version="3"),
        {"fullUrl": "http://ehr/fhir/Observation/lac1"},  # a tombstone: no resource, no request
    ],
)
def test_a_resource_whose_newest_version_is_a_deletion_is_not_read(decode: Any, deleted: dict[str, Any]) -> None:
    payload = history(deleted, entry(lactate(1.2, "amended", "2")), entry(lactate(12.0, "final", "1")))
    result = decode(payload)
    assert result.events == [] and result.rejected == []
    assert sorted(i.reason for i in result.ignored) == ["deleted", "superseded_version", "superseded_version"]


@pytest.mark.parametrize("decode", DECODERS)
def test_a_resource_created_again_after_its_deletion_is_read(decode: Any) -> None:
    payload = history(
        entry(lactate(3.3, "final", "4")), deletion(version="3"), entry(lactate(1.2, "amended", "2"), "POST")
    )
    result = decode(payload)
    assert [e.value for e in result.events] == [3.3]
    assert [i.reason for i in result.ignored] == ["superseded_version", "superseded_version"]


@pytest.mark.parametrize("kind", ["collection", "searchset", "batch"])
def test_other_bundles_read_every_entry(kind: str) -> None:
    """Only a history lists versions of one resource: elsewhere each entry is read, as before."""
    payload = history(entry(lactate(1.2, "amended", "2")), entry(lactate(12.0, "final", "1")), kind=kind)
    assert sorted(e.value for e in decode_fhir(payload).events) == [1.2, 12.0]


def test_the_type_after_the_entries_still_makes_a_history() -> None:
    """The stream learns the Bundle's type only once it has read past ``entry`` when ``type`` follows."""
    entries = [entry(lactate(1.2, "amended", "2")), entry(lactate(12.0, "final", "1"))]
    payload = b'{"resourceType":"Bundle","entry":' + json.dumps(entries).encode() + b',"type":"history"}'
    assert [e.value for e in streamed(payload).events] == [1.2]


def test_an_older_version_of_an_encounter_does_not_place_the_results() -> None:
    """Both versions share the fullUrl: the newest resolves references (the old one's unit did)."""
    from vigil.schemas.codecs.care_units import Units

    def encounter(version: str, unit: str) -> dict[str, Any]:
        resource = {
            "resourceType": "Encounter",
            "id": "e1",
            "meta": {"versionId": version},
            "status": "in-progress",
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"},
            "location": [{"location": {"display": unit}, "status": "active"}],
        }
        return {"fullUrl": "http://ehr/fhir/Encounter/e1", "resource": resource}

    result_entry = entry(lactate(1.2, "final", "1") | {"encounter": {"reference": "Encounter/e1"}})
    payload = history(result_entry, encounter("2", "ICU-3"), encounter("1", "WARD4"))
    icu = Units.of(["ICU-3"])
    whole = decode_fhir(payload, icu)
    merged = DecodeResult()
    for item in decode_fhir_stream(io.BytesIO(payload), units=icu):
        merged.extend(item.result)
    for decoded in (whole, merged):
        assert [(e.value, e.ward) for e in decoded.events] == [(1.2, "ICU-3")]


# --- whatever the entries, a history Bundle never raises, and both decoders read the same versions ----

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_codec_properties import PROPERTY_SETTINGS, check, json_values, mutated_fhir  # noqa: E402

versions = st.one_of(st.none(), st.sampled_from(["1", "2", "10", "a", ""]), json_values)
methods = st.sampled_from(["PUT", "POST", "DELETE", None])


@st.composite
def history_entries(draw: st.DrawFn) -> list[Any]:
    entries: list[Any] = []
    for resource in draw(st.lists(mutated_fhir(), min_size=1, max_size=5)):
        resource["id"] = draw(st.sampled_from(["lac1", "lac2", resource.get("id")]))
        if draw(st.booleans()):
            resource["meta"] = {"versionId": draw(versions), "lastUpdated": draw(st.one_of(st.none(), json_values))}
        item: dict[str, Any] = {"fullUrl": draw(st.sampled_from(["http://ehr/fhir/Observation/lac1", "urn:x", None]))}
        if draw(st.integers(0, 4)):
            item["resource"] = resource
        method = draw(methods)
        if method is not None:
            item["request"] = {"method": method, "url": draw(st.sampled_from(["Observation/lac1", "Observation", ""]))}
        if draw(st.booleans()):
            item["response"] = {"status": "200", "etag": draw(st.one_of(json_values, st.just('W/"3"')))}
        entries.append(draw(st.sampled_from([item, draw(json_values)])) if draw(st.integers(0, 9)) == 0 else item)
    return entries


@PROPERTY_SETTINGS
@given(history_entries())
def test_any_history_bundle_decodes_without_raising_and_streams_as_it_decodes(entries: list[Any]) -> None:
    payload = json.dumps({"resourceType": "Bundle", "type": "history", "entry": entries}).encode()
    whole, merged = decode_fhir(payload), streamed(payload)
    check(whole, "fhir")
    check(merged, "fhir")
    # the whole decoder read the envelope, and the payload is JSON (json.dumps writes inf as Infinity,
    # which the whole decoder reads and the stream refuses): the same versions read
    readable = b"Infinity" not in payload and b"NaN" not in payload
    if (not whole.rejected or whole.events) and readable:
        assert {e.event_id for e in merged.events} >= {e.event_id for e in whole.events}
        assert sorted(i.reason for i in whole.ignored if i.reason in ("superseded_version", "deleted")) == sorted(
            i.reason for i in merged.ignored if i.reason in ("superseded_version", "deleted")
        )
