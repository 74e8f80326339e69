"""FHIR results are scored by the unit their Encounter had the patient in (``fhir_places``): read from
the Bundle's Encounter and Locations, so a hospital-wide FHIR feed's ward results open no stay, as
an HL7v2 ORU^R01 from a ward does not (``Units.scored``)."""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from vigil.schemas.codecs.care_units import Units
from vigil.schemas.codecs.fhir import decode_fhir
from vigil.schemas.codecs.fhir_places import BundleIndex, Place, places_from_json, places_to_json, ward_of
from vigil.schemas.codecs.fhir_stream import decode_fhir_stream
from vigil.schemas.codecs.loinc import DecodeResult
from vigil.schemas.codecs.placing import Placing
from vigil.schemas.events import PatientEvent

FIXTURE = Path(__file__).parent / "fixtures" / "fhir" / "bundle-transaction-ward-results.json"
ICU = Units.of(["MICU", "ICU-3"], away=["OR"])
WARD = Units.of(["4WEST"])


def ward_bundle() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())


def encode(resource: dict[str, Any]) -> bytes:
    return json.dumps(resource).encode()


def streamed(payload: bytes, units: Units) -> DecodeResult:
    total = DecodeResult()
    for outcome in decode_fhir_stream(io.BytesIO(payload), units=units):
        total.extend(outcome.result)
    return total


def results(result: DecodeResult) -> list[tuple[str, float, str | None, str | None]]:
    checked = result.checked(datetime.now(UTC))
    return [(e.code, e.value, e.ward, e.encounter) for e in checked.events]


@pytest.mark.parametrize("decode", [decode_fhir, streamed], ids=["whole", "streamed"])
def test_a_wards_results_in_a_transaction_bundle_are_ignored_and_counted_by_unit(decode: Any) -> None:
    """The v2-to-FHIR shape: the Encounter names the bed, the bed is part of a room, the room of 4WEST."""
    result = decode(FIXTURE.read_bytes(), ICU)
    assert result.events == [] and result.rejected == []
    ignored = [r for r in result.ignored if r.reason == "unmonitored_unit"]
    assert [r.detail for r in ignored] == [
        f"entry[{i}] Observation sent from 4WEST: not a monitored or away unit (its Encounter's location)"
        for i in (5, 6)
    ]
    assert result.ignored_units == {"4WEST": 2}


@pytest.mark.parametrize("decode", [decode_fhir, streamed], ids=["whole", "streamed"])
def test_a_monitored_units_results_carry_its_ward_and_the_encounters_id(decode: Any) -> None:
    assert results(decode(FIXTURE.read_bytes(), WARD)) == [
        ("HR", 104.0, "4WEST", "V88120317"),
        ("O2Sat", 93.0, "4WEST", "V88120317"),
    ]


def test_without_units_every_result_is_scored_in_the_ward_its_encounter_names() -> None:
    result = decode_fhir(FIXTURE.read_bytes())
    assert [r.reason for r in result.ignored] == ["context_resource"] * 5
    assert [ward for _, _, ward, _ in results(result)] == ["4WEST", "4WEST"]


def test_a_result_whose_encounter_the_bundle_does_not_carry_is_scored_without_a_ward() -> None:
    """As an ORU^R01 without PV1-3: Vigil cannot tell where it came from."""
    bundle = ward_bundle()
    del bundle["entry"][4]  # the Encounter
    for entry in bundle["entry"][4:]:
        entry["resource"]["encounter"] = {"reference": "Encounter/V88120317"}
    assert results(decode_fhir(encode(bundle), ICU)) == [
        ("HR", 104.0, None, "V88120317"),
        ("O2Sat", 93.0, None, "V88120317"),
    ]


def test_a_wards_results_are_ignored_whatever_else_is_wrong_with_them() -> None:
    """A ward's results are not Vigil's errors: not dead letters for a code or a status it refuses."""
    bundle = ward_bundle()
    bundle["entry"][5]["resource"]["status"] = "cancelled"
    bundle["entry"][6]["resource"]["code"]["coding"] = [{"system": "urn:local", "code": "X1"}]
    result = decode_fhir(encode(bundle), ICU)
    assert result.rejected == [] and result.unknown_codes == {}
    assert result.ignored_units == {"4WEST": 2}


def stay(*places: dict[str, Any], **results: str) -> dict[str, Any]:
    """A Bundle: one Encounter with ``places`` and one heart rate per ``results`` (name -> time)."""
    encounter = {
        "resourceType": "Encounter",
        "id": "enc-7",
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p1"},
        "location": list(places),
    }
    entries = [{"fullUrl": "https://ehr.example/fhir/Encounter/enc-7", "resource": encounter}]
    for name, at in results.items():
        observation = {
            "resourceType": "Observation",
            "id": name,
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/p1"},
            "encounter": {"reference": "Encounter/enc-7"},
            "effectiveDateTime": at,
            "valueQuantity": {"value": 90, "system": "http://unitsofmeasure.org", "code": "/min"},
        }
        entries.append({"fullUrl": f"https://ehr.example/fhir/Observation/{name}", "resource": observation})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def place(unit: str, status: str | None, start: str | None = None, end: str | None = None) -> dict[str, Any]:
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    return (
        {"location": {"display": unit}}
        | ({"status": status} if status else {})
        | ({"period": period} if period else {})
    )


def test_a_result_is_read_in_the_unit_its_time_falls_in() -> None:
    """A late lab taken in the ICU is the ICU's, though the patient is on the ward now; one taken
    after the move is the ward's; one between the two places, in none, is read where the patient is."""
    moved = stay(
        place("MICU", "completed", "2024-03-14T08:00:00Z", "2024-03-16T10:00:00Z"),
        place("4WEST", "active", "2024-03-16T10:05:00Z"),
        inIcu="2024-03-16T09:30:00Z",
        onWard="2024-03-16T11:00:00Z",
        between="2024-03-16T10:02:00Z",
    )
    result = decode_fhir(encode(moved), ICU).checked(datetime.now(UTC))
    assert result.rejected == []
    assert [(e.code, e.ward, e.observed_at.hour) for e in result.events] == [
        ("transfer_out", "MICU", 10),  # the Encounter itself: the move out of the ICU
        ("HR", "MICU", 9),
    ]
    assert result.ignored_units == {"4WEST": 2}


@pytest.mark.parametrize(
    ("places", "ward"),
    [
        ((place("MICU", None),), "MICU"),  # a converter's current location: neither status nor period
        ((place("MICU", "active", "2024-03-14T08:00:00Z"), place("4WEST", "planned", "2024-03-15T08:00:00Z")), "MICU"),
        ((place("4WEST", "reserved"), place("MICU", "active")), "MICU"),
        ((place("MICU", "completed", "2024-03-14T08:00:00Z"),), None),  # left, when not said: no unit
    ],
)
def test_planned_reserved_and_left_places_are_not_where_a_result_was_taken(
    places: tuple[dict[str, Any], ...], ward: str | None
) -> None:
    result = decode_fhir(encode(stay(*places, hr="2024-03-15T12:00:00Z")), ICU).checked(datetime.now(UTC))
    assert [e.ward for e in result.events] == [ward] and result.ignored_units == {}


def test_a_bed_listed_beside_its_unit_is_not_read_as_the_unit() -> None:
    bed = place("MICU bed 4", "active", "2024-03-14T08:00:00Z") | {
        "physicalType": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "bd"}]
        }
    }
    bundle = stay(place("MICU", "active", "2024-03-14T08:00:00Z"), bed, hr="2024-03-15T12:00:00Z")
    result = decode_fhir(encode(bundle), ICU).checked(datetime.now(UTC))
    assert [e.ward for e in result.events] == ["MICU"]


def test_a_room_whose_unit_the_bundle_does_not_carry_names_no_unit() -> None:
    bundle = ward_bundle()
    del bundle["entry"][1]  # the 4WEST Location: the room's partOf leaves the Bundle
    result = decode_fhir(encode(bundle), ICU).checked(datetime.now(UTC))
    assert [e.ward for e in result.events] == [None, None] and result.ignored_units == {}


def test_a_circular_part_of_chain_names_no_unit() -> None:
    bundle = ward_bundle()
    room = bundle["entry"][2]["resource"]
    room["partOf"] = {"reference": "urn:uuid:5b8e3c1a-0a43-4f7e-9d3e-7a1c2f9b0004"}  # the room is part of its bed
    result = decode_fhir(encode(bundle), ICU).checked(datetime.now(UTC))
    assert [e.ward for e in result.events] == [None, None]


def test_the_site_names_a_unit_by_any_of_its_locations_names_and_the_ward_is_that_name() -> None:
    bundle = ward_bundle()
    unit = bundle["entry"][1]["resource"]
    unit["identifier"] = [{"value": "WARD-0042"}]
    unit["alias"] = ["Four West"]
    result = decode_fhir(encode(bundle), Units.of(["four west"])).checked(datetime.now(UTC))
    assert [e.ward for e in result.events] == ["Four West", "Four West"]
    assert decode_fhir(encode(bundle), ICU).ignored_units == {"WARD-0042": 2}  # unknown: its first name


def test_treatments_and_procedures_from_a_ward_are_ignored_and_from_the_icu_carry_its_ward() -> None:
    """The ICU fixture's antibiotic and blood culture, given on the ward: their Encounter names 4WEST."""
    bundle = ward_bundle()
    treatments = json.loads((FIXTURE.parent / "bundle-transaction-icu-treatments.json").read_text())
    given = [
        e for e in treatments["entry"] if e["resource"]["resourceType"] in ("MedicationAdministration", "Procedure")
    ]
    for entry in given:
        resource = entry["resource"]
        resource["subject"] = {"reference": "urn:uuid:5b8e3c1a-0a43-4f7e-9d3e-7a1c2f9b0001"}
        resource["context" if "context" in resource else "encounter"] = {
            "reference": "urn:uuid:5b8e3c1a-0a43-4f7e-9d3e-7a1c2f9b0005"
        }
    medication = next(e for e in treatments["entry"] if e["resource"]["resourceType"] == "Medication")
    bundle["entry"][5:] = [medication, *given]
    assert decode_fhir(encode(bundle), ICU).ignored_units == {"4WEST": 4}
    assert [(code, ward) for code, _, ward, _ in results(decode_fhir(encode(bundle), WARD))] == [
        ("antibiotic", "4WEST"),
        ("vasopressor", "4WEST"),
        ("crystalloid_ml", "4WEST"),
        ("blood_culture", "4WEST"),
    ]


def test_an_encounter_move_reads_its_units_from_the_bundles_locations() -> None:
    """An Encounter update in a Bundle with its Locations: from the ICU's bed to the ward's bed."""
    bundle = ward_bundle()
    icu_bed = copy.deepcopy(bundle["entry"][3])
    icu_bed["fullUrl"] = "urn:uuid:icu-bed"
    icu_bed["resource"] |= {"id": "ICU-3-01", "partOf": {"reference": "urn:uuid:icu"}}
    icu = {"fullUrl": "urn:uuid:icu", "resource": {"resourceType": "Location", "identifier": [{"value": "ICU-3"}]}}
    encounter = bundle["entry"][4]["resource"]
    encounter["location"] = [
        {
            "location": {"reference": "urn:uuid:icu-bed"},
            "status": "completed",
            "period": {"start": "2024-03-14T09:20:00+00:00", "end": "2024-03-16T10:00:00+00:00"},
        },
        {
            "location": {"reference": "urn:uuid:5b8e3c1a-0a43-4f7e-9d3e-7a1c2f9b0004"},
            "status": "active",
            "period": {"start": "2024-03-16T10:04:00+00:00"},
        },
    ]
    bundle["entry"][5:] = [icu_bed, icu]
    result = decode_fhir(encode(bundle), ICU).checked(datetime.now(UTC))
    assert [(e.code, e.ward, e.encounter) for e in result.events] == [("transfer_out", "ICU-3", "V88120317")]


def test_bundle_index_resolves_relative_references_by_url_tail_and_by_type_and_id() -> None:
    index = BundleIndex()
    index["https://ehr.example/fhir/Location/L1"] = {"resourceType": "Location", "id": "L1"}
    index["urn:uuid:1234"] = {"resourceType": "Encounter", "id": "E1"}
    assert index.resolve("Location/L1") == {"resourceType": "Location", "id": "L1"}
    assert index.resolve("Encounter/E1") == {"resourceType": "Encounter", "id": "E1"}
    assert index.resolve("Encounter/E2") is None
    index["urn:uuid:5678"] = {"resourceType": "Encounter", "id": "E2"}  # added later: found
    assert index.resolve("Encounter/E2") == {"resourceType": "Encounter", "id": "E2"}


def test_the_ward_an_event_carries_fits_the_events_limit() -> None:
    assert ward_of("  Medical Intensive Care Unit, North Tower 4 ") == "Medical Intensive Care Unit, Nor"
    assert ward_of("  ") is None


def test_an_icus_treatments_carry_its_ward_and_a_ward_that_is_not_monitored_ignores_them() -> None:
    """An antibiotic (a Medication entry), a vasopressor (a rate ratio), a bolus and a blood culture,
    their Encounter in the ICU-3 Location of the same transaction."""
    payload = (FIXTURE.parent / "bundle-transaction-icu-treatments.json").read_bytes()
    expected = [
        ("antibiotic", 1.0, "ICU-3", "V77120044"),
        ("vasopressor", 0.1, "ICU-3", "V77120044"),
        ("crystalloid_ml", 1000.0, "ICU-3", "V77120044"),
        ("blood_culture", 1.0, "ICU-3", "V77120044"),
    ]
    assert results(decode_fhir(payload, ICU)) == results(decode_fhir(payload)) == expected
    assert decode_fhir(payload, WARD).ignored_units == {"ICU-3": 4}


# --- results sent apart from their Encounter: placed by the units an earlier payload gave it ------


def sent_apart(pid: str, at: datetime, *units: str) -> tuple[bytes, bytes]:
    """An Encounter update alone (the patient in ``units`` in turn, the last one now) and a heart
    rate at ``at`` sent alone, naming that Encounter: a FHIR subscription's two notifications."""
    stamps = [(at - timedelta(hours=len(units) - i)).strftime("%Y-%m-%dT%H:%M:%SZ") for i in range(len(units) + 1)]
    places = [
        {"location": {"display": unit}, "status": "completed", "period": {"start": stamps[i], "end": stamps[i + 1]}}
        for i, unit in enumerate(units)
    ]
    places[-1] = {"location": {"display": units[-1]}, "status": "active", "period": {"start": stamps[-2]}}
    resource = {
        "resourceType": "Encounter",
        "id": f"{pid}-visit",
        "meta": {"versionId": at.strftime("%H%M")},
        "status": "in-progress",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": f"Patient/{pid}"},
        "location": places,
    }
    heart_rate = {
        "resourceType": "Observation",
        "id": f"{pid}-hr-{at:%H%M}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "encounter": {"reference": f"Encounter/{pid}-visit"},
        "effectiveDateTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "valueQuantity": {"value": 96, "system": "http://unitsofmeasure.org", "code": "/min"},
    }
    return json.dumps(resource).encode(), json.dumps(heart_rate).encode()


T0 = datetime(2024, 3, 16, 10, 0, tzinfo=UTC).timestamp()
MOVED = (Place("MICU", "completed", T0 - 86400, T0), Place("4WEST", "active", T0 + 300, None))


def alone(at: datetime, encounter: str | None = "enc-7", **extra: Any) -> PatientEvent:
    """A heart rate decoded from an Observation sent alone (its Encounter not in the payload)."""
    fields: dict[str, Any] = {
        "patient_id": "p1",
        "source": "fhir",
        "kind": "vital",
        "code": "HR",
        "value": 90.0,
        "unit": "/min",
    }
    return PatientEvent(encounter=encounter, observed_at=at, **(fields | extra))


def test_an_encounters_units_are_kept_from_the_payload_that_carries_it() -> None:
    moved = stay(
        place("MICU", "completed", "2024-03-15T10:00:00Z", "2024-03-16T10:00:00Z"),
        place("4WEST", "active", "2024-03-16T10:05:00Z"),
    )
    assert decode_fhir(encode(moved), ICU).encounters == {("p1", "enc-7"): MOVED}
    assert decode_fhir(encode(moved)).encounters == {}  # no units named: no Encounter is read
    del moved["entry"][0]["resource"]["subject"]
    assert decode_fhir(encode(moved), ICU).encounters == {}  # whose, it does not say: nothing kept


def test_results_sent_alone_are_placed_by_their_encounters_kept_units() -> None:
    in_icu, on_ward = alone(datetime(2024, 3, 16, 9, 30, tzinfo=UTC)), alone(datetime(2024, 3, 16, 11, tzinfo=UTC))
    unknown, given = alone(on_ward.observed_at, "enc-8"), alone(on_ward.observed_at, ward="MICU")
    other = alone(on_ward.observed_at, patient_id="p2")  # another patient's result naming that Encounter
    placed = DecodeResult(events=[in_icu, on_ward, unknown, given, other]).placed({("p1", "enc-7"): MOVED}, ICU)
    assert [(e.patient_id, e.encounter, e.ward) for e in placed.events] == [
        ("p1", "enc-7", "MICU"),
        ("p1", "enc-8", None),
        ("p1", "enc-7", "MICU"),
        ("p2", "enc-7", None),  # placed only by an Encounter of its own patient
    ]
    assert placed.ignored_units == {"4WEST": 1} and [r.reason for r in placed.ignored] == ["unmonitored_unit"]
    assert placed.ignored[0].detail == (
        "HR sent from 4WEST: not a monitored or away unit (its Encounter's location, kept from an earlier payload)"
    )
    assert placed.accounted == 5  # every result still accounted for
    # scored without a unit because Vigil read no Encounter of theirs: counted (vigil_fhir_unplaced_total)
    assert placed.unplaced == 2 and placed.checked(datetime.now(UTC)).unplaced == 2


def test_only_fhir_results_without_a_unit_are_placed() -> None:
    at = datetime(2024, 3, 16, 11, tzinfo=UTC)
    untouched = [
        alone(at, source="hl7v2"),  # HL7v2 names its unit in every message (PV1-3)
        alone(at, kind="encounter", code="discharge", value=1.0, unit=""),  # a stay's end is never ignored
        alone(at, encounter=None),
    ]
    placed = DecodeResult(events=untouched).placed({("p1", "enc-7"): MOVED}, ICU)
    assert placed.events == untouched and placed.unplaced == 0  # none of them needs a place


def test_kept_units_survive_the_round_trip_and_a_damaged_blob_places_nothing() -> None:
    assert places_from_json(places_to_json(MOVED)) == MOVED
    for damaged in (b"", None, b"{", b'[["4WEST"]]', b'[["4WEST", "active", "x", null]]', b"[1]"):
        assert places_from_json(damaged) in ((), (Place("4WEST", "active", None, None),))


def test_a_payload_asks_the_store_once_per_encounter_its_results_name() -> None:
    """10,000 results of one patient, the Encounter unknown to the store: asked once, not per entry."""
    placing, at = Placing(), datetime(2024, 3, 16, 11, tzinfo=UTC)
    entry = DecodeResult(events=[alone(at), alone(at, "enc-8")])
    assert placing.to_ask(entry) == [("p1", "enc-7"), ("p1", "enc-8")] and placing.to_ask(entry) == []
    placing.found({("p1", "enc-7"): MOVED})  # enc-8: never sent
    carried = DecodeResult(encounters={("p1", "enc-9"): MOVED[:1]}, events=[alone(at, "enc-9")])
    assert placing.carried(carried) == {("p1", "enc-9"): MOVED[:1]} and placing.to_ask(carried) == []
    placed = placing.place(entry, ICU)
    assert [e.ward for e in placed.events] == [None] and placed.ignored_units == {"4WEST": 1}


def test_an_encounter_of_another_patient_in_the_bundle_places_nothing() -> None:
    """A Bundle that mixes patients up: the result is scored as one whose unit Vigil cannot tell."""
    bundle = ward_bundle()
    bundle["entry"][6]["resource"]["subject"] = {"reference": "Patient/someone-else"}
    result = decode_fhir(encode(bundle), ICU).checked(datetime.now(UTC))
    assert [(e.patient_id, e.ward) for e in result.events] == [("someone-else", None)]
    assert result.ignored_units == {"4WEST": 1}  # the heart rate, of the Encounter's own patient
