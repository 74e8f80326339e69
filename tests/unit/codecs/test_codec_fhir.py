"""FHIR R4 decoder: the spec's own examples, Bundles, units, status/time/subject rules, treatments."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from vigil.schemas.codecs.care_units import Units
from vigil.schemas.codecs.fhir import MAX_PAYLOAD_BYTES, decode_fhir
from vigil.schemas.codecs.loinc import LOINC_TO_CANONICAL
from vigil.schemas.codes import CATALOGUE

FIXTURES = Path(__file__).parent / "fixtures" / "fhir"


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


def encode(resource: dict[str, Any]) -> bytes:
    return json.dumps(resource).encode()


def timed(name: str, when: str = "2024-03-15T14:25:00+01:00") -> dict[str, Any]:
    resource = load(name)
    resource["effectiveDateTime"] = when
    return resource


def observation(loinc: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"obs-{loinc}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2024-03-15T14:25:00Z",
        "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org", "code": unit},
    }
    resource.update(extra)
    return resource


def checked(payload: bytes):
    """Decoded, then through the intake rules (canonical unit, range, clock) as the interop agent does."""
    return decode_fhir(payload).checked(datetime.now(UTC))


def only_event(payload: bytes):
    result = checked(payload)
    assert result.rejected == [], result.rejected
    assert len(result.events) == 1, result.events
    return result.events[0]


# --- the FHIR specification's own examples ----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "observation-example-heart-rate.json",
        "observation-example-respiratory-rate.json",
        "observation-example-body-temperature.json",
        "observation-example-bloodpressure.json",
    ],
)
def test_spec_vital_sign_examples_with_a_bare_date_are_rejected_missing_time(name: str) -> None:
    result = decode_fhir((FIXTURES / name).read_bytes())
    assert result.events == []
    assert [r.reason for r in result.rejected] == ["missing_time"]
    assert "date without a time of day" in result.rejected[0].detail


@pytest.mark.parametrize(
    ("name", "code", "value", "unit"),
    [
        ("observation-example-heart-rate.json", "HR", 44.0, "/min"),
        ("observation-example-respiratory-rate.json", "Resp", 26.0, "/min"),
        ("observation-example-body-temperature.json", "Temp", 36.5, "Cel"),
    ],
)
def test_spec_vital_sign_examples_map_once_timed(name: str, code: str, value: float, unit: str) -> None:
    event = only_event(encode(timed(name)))
    assert (event.code, event.value, event.unit, event.source) == (code, value, unit, "fhir")
    assert event.kind == CATALOGUE[code][0]
    assert event.patient_id == "example"
    assert event.observed_at == datetime(2024, 3, 15, 13, 25, tzinfo=UTC)


def test_spec_blood_pressure_panel_maps_systolic_and_diastolic_components() -> None:
    result = decode_fhir(encode(timed("observation-example-bloodpressure.json")))
    assert result.rejected == []
    assert {(e.code, e.value, e.unit) for e in result.events} == {
        ("SBP", 107.0, "mm[Hg]"),
        ("DBP", 60.0, "mm[Hg]"),
    }
    assert len({e.event_id for e in result.events}) == 2


def test_spec_sat_o2_example_maps_as_published() -> None:
    event = only_event((FIXTURES / "observation-example-satO2.json").read_bytes())
    assert (event.code, event.value, event.unit) == ("O2Sat", 95.0, "%")
    assert event.observed_at == datetime(2014, 12, 5, 8, 30, 10, tzinfo=UTC)  # +01:00 normalized to UTC


VITAL_SIGNS = [
    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}
]
LABORATORY = [
    {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}
]


def loinc_codes(*codes: str) -> dict[str, Any]:
    return {"coding": [{"system": "http://loinc.org", "code": c} for c in codes]}


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({}, "O2Sat"),  # 2708-6 alone: SpO2, as monitors and engines send it (test_saturation)
        ({"category": LABORATORY}, "SaO2"),  # a laboratory's: a blood gas (the model's SaO2)
        ({"category": LABORATORY, "code": loinc_codes("2708-6", "59408-5")}, "O2Sat"),  # pulse oximetry says so
        ({"category": VITAL_SIGNS}, "O2Sat"),  # the vital-signs profile's SpO2
        ({"code": loinc_codes("2708-6", "59408-5")}, "O2Sat"),  # the pulse-oximetry profile's codes
        ({"code": loinc_codes("59408-5")}, "O2Sat"),
        (
            {
                "code": {
                    "coding": [
                        *loinc_codes("2708-6")["coding"],
                        {"system": "urn:iso:std:iso:11073:10101", "code": "150456"},
                    ]
                }
            },
            "O2Sat",
        ),
        ({"code": {"coding": [{"system": "urn:vigil:code", "code": "SaO2"}]}, "category": VITAL_SIGNS}, "SaO2"),
    ],
)
def test_arterial_saturation_from_a_lab_is_sao2_and_from_a_pulse_oximeter_o2sat(
    extra: dict[str, Any], code: str
) -> None:
    """2708-6 (oxygen saturation in arterial blood) mapped to O2Sat, the bedside SpO2, whatever sent
    it: a blood gas went into SpO2 and NEWS2, and the model's SaO2 input stayed empty (set A's SaO2
    is the blood gas). Only a laboratory's is SaO2: the vital-signs profile codes SpO2 with 2708-6,
    and monitors send it without a category (tests/unit/codecs/test_saturation.py)."""
    assert only_event(encode(observation("2708-6", 97, "%", **extra))).code == code


def test_a_saturation_component_of_a_vital_signs_observation_is_o2sat() -> None:
    component = {
        "code": loinc_codes("2708-6"),
        "valueQuantity": {"value": 96, "system": "http://unitsofmeasure.org", "code": "%"},
    }
    vitals = observation("85353-1", 0, "1", category=VITAL_SIGNS, component=[component])
    del vitals["valueQuantity"]
    assert only_event(encode(vitals)).code == "O2Sat"
    del vitals["category"]
    assert only_event(encode(vitals)).code == "O2Sat"  # without a category: still the bedside's
    vitals["category"] = LABORATORY
    assert only_event(encode(vitals)).code == "SaO2"


@pytest.mark.parametrize(
    "quantity",
    [
        {"value": 7.2},
        {"value": 7.2, "unit": "pH"},
        {"value": 7.2, "system": "http://unitsofmeasure.org", "code": "[pH]"},
    ],
)
def test_a_ph_without_a_unit_or_with_unit_ph_is_read(quantity: dict[str, Any]) -> None:
    resource = observation("2744-1", 0, "")
    resource["valueQuantity"] = quantity
    assert (only_event(encode(resource)).value, only_event(encode(resource)).unit) == (7.2, "[pH]")


def test_spec_glasgow_example_maps_the_total_and_ignores_its_coded_components() -> None:
    result = decode_fhir((FIXTURES / "observation-example-glasgow.json").read_bytes())
    assert [(e.code, e.value, e.unit, e.kind) for e in result.events] == [("GCS", 13.0, "{score}", "assessment")]
    assert result.rejected == [] and not result.unknown_codes


def test_spec_vitals_panel_is_ignored_not_dead_lettered() -> None:
    result = decode_fhir((FIXTURES / "observation-example-vitals-panel.json").read_bytes())
    assert result.events == [] and result.rejected == []
    assert [i.reason for i in result.ignored] == ["panel"]
    assert result.accounted == 1


def test_spec_creatinine_with_a_local_lab_code_is_unmapped_and_counted() -> None:
    result = decode_fhir((FIXTURES / "observation-example-f204-creatinine.json").read_bytes())
    assert [r.reason for r in result.rejected] == ["unmapped_code"]
    assert result.unknown_codes == {"https://intranet.aumc.nl/labtestcodes|20005": 1}


def test_spec_creatinine_in_umol_per_l_converts_when_coded_with_loinc() -> None:
    resource = load("observation-example-f204-creatinine.json")
    resource["code"]["coding"].append({"system": "http://loinc.org", "code": "2160-0"})
    resource["effectiveDateTime"] = "2013-04-02T10:30:10+01:00"
    event = only_event(encode(resource))
    # valueQuantity.system is SNOMED (code 258814008), so the display unit umol/L is used
    assert event.code == "Creatinine" and event.unit == "mg/dL"
    assert event.value == pytest.approx(122 / 88.42)


# --- Bundles ----------------------------------------------------------------------------------


def test_searchset_bundle_maps_matches_ignores_context_and_dead_letters_unmapped() -> None:
    result = decode_fhir((FIXTURES / "bundle-searchset-vitals.json").read_bytes())
    codes = ["Age", "DBP", "Gender", "HR", "O2Sat", "Resp", "SBP", "Temp"]
    assert sorted(e.code for e in result.events) == codes  # the included Patient's age and sex too
    assert {e.patient_id for e in result.events} == {"example"}
    assert [r.reason for r in result.rejected] == ["unmapped_code"]
    assert "entry[6]" in result.rejected[0].detail
    assert result.unknown_codes == {"http://loinc.org|39156-5": 1}
    assert sorted(i.reason for i in result.ignored) == ["panel"]


def test_one_invalid_entry_does_not_drop_the_rest_of_the_bundle() -> None:
    bundle = load("bundle-searchset-vitals.json")
    bundle["entry"][0]["resource"]["valueQuantity"]["value"] = "forty-four"
    bundle["entry"][1]["resource"]["effectiveDateTime"] = "2024-03-15T14:25:00"  # time without offset
    result = decode_fhir(encode(bundle))
    reasons = {r.reason for r in result.rejected}
    assert {"schema", "missing_time"} <= reasons
    assert sorted(e.code for e in result.events) == ["Age", "DBP", "Gender", "O2Sat", "SBP", "Temp"]


def test_transaction_bundle_resolves_urn_uuid_subject_to_the_patient_entry() -> None:
    patient_url = "urn:uuid:9a1c4d1e-3b7f-4f6e-9a55-0c1d2e3f4a5b"
    hr = observation("8867-4", 88, "/min", subject={"reference": patient_url})
    del hr["id"]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_url,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": "urn:mrn", "value": "MRN-881"}],
                },
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:1b2c3d4e-0000-4000-8000-000000000001",
                "resource": hr,
                "request": {"method": "POST", "url": "Observation"},
            },
            {"request": {"method": "DELETE", "url": "Observation/old-1"}},
        ],
    }
    result = decode_fhir(encode(bundle))
    assert [(e.code, e.patient_id) for e in result.events] == [("HR", "MRN-881")]
    assert sorted(i.reason for i in result.ignored) == ["context_resource", "no_resource"]


def test_collection_bundle_and_empty_bundle() -> None:
    collection = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": observation("2524-7", 2.1, "mmol/L")}],
    }
    assert [e.code for e in decode_fhir(encode(collection)).events] == ["Lactate"]
    empty = decode_fhir(encode({"resourceType": "Bundle", "type": "searchset", "total": 0}))
    assert empty.events == [] and empty.rejected == []
    assert [i.reason for i in empty.ignored] == ["empty_bundle"]


def test_bundle_with_an_invalid_shell_is_rejected_whole() -> None:
    result = decode_fhir(encode({"resourceType": "Bundle", "type": "searchset", "total": "many", "entry": []}))
    assert [r.reason for r in result.rejected] == ["schema"]


# --- mapping table, units -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loinc", "value", "unit", "code", "expected"),
    [
        ("9279-1", 22, "/min", "Resp", 22.0),
        ("8867-4", 120, "/min", "HR", 120.0),
        ("2708-6", 0.93, "1", "O2Sat", 93.0),  # alone: SpO2 (a laboratory's blood gas: SaO2)
        ("59408-5", 91, "%", "O2Sat", 91.0),
        ("8310-5", 101.3, "[degF]", "Temp", (101.3 - 32) * 5 / 9),
        ("8310-5", 38.4, "Cel", "Temp", 38.4),
        ("8478-0", 8.0, "kPa", "MAP", 8.0 * 7.50062),
        ("2524-7", 36.0, "mg/dL", "Lactate", 36.0 / 9.008),
        ("32693-4", 4.2, "mmol/L", "Lactate", 4.2),
        ("6690-2", 14.1, "10*3/uL", "WBC", 14.1),
        ("2160-0", 1.8, "mg/dL", "Creatinine", 1.8),
        ("777-3", 95, "10*3/uL", "Platelets", 95.0),
        ("1975-2", 34.2, "umol/L", "Bilirubin_total", 2.0),
        ("9269-2", 12, "{score}", "GCS", 12.0),
        ("3150-0", 40, "%", "FiO2", 0.4),
        ("2019-8", 6.1, "kPa", "PaCO2", 6.1 * 7.50062),
        ("3151-8", 4, "L/min", "oxygen", 4.0),
    ],
)
def test_loinc_codes_map_and_convert_to_the_canonical_unit(
    loinc: str, value: float, unit: str, code: str, expected: float
) -> None:
    event = only_event(encode(observation(loinc, value, unit)))
    assert event.code == code
    assert event.unit == CATALOGUE[code][1]
    assert event.value == pytest.approx(expected)


def test_every_mapped_loinc_code_targets_a_catalogue_code() -> None:
    assert set(LOINC_TO_CANONICAL.values()) <= set(CATALOGUE)


def test_unit_falls_back_to_display_unit_when_code_is_absent() -> None:
    resource = observation("8310-5", 98.6, "[degF]")
    resource["valueQuantity"] = {"value": 98.6, "unit": "°F"}
    assert only_event(encode(resource)).value == pytest.approx(37.0)


def test_unknown_unit_is_rejected_unit() -> None:
    result = checked(encode(observation("8867-4", 1.5, "Hz")))
    assert [r.reason for r in result.rejected] == ["unit"]


def test_implausible_value_is_rejected_out_of_range() -> None:
    # 98.6 labelled Cel: a unit mix-up, not a fever
    result = checked(encode(observation("8310-5", 98.6, "Cel")))
    assert [r.reason for r in result.rejected] == ["out_of_range"]
    assert "98.6" not in result.rejected[0].detail  # details never carry patient values


def test_comparator_keeps_the_bound() -> None:
    resource = observation("2524-7", 15, "mmol/L")
    resource["valueQuantity"]["comparator"] = ">"
    assert only_event(encode(resource)).value == 15.0


def test_observation_without_value_is_no_value() -> None:
    resource = observation("8867-4", 1, "/min")
    del resource["valueQuantity"]
    resource["dataAbsentReason"] = {"text": "patient refused"}
    assert [r.reason for r in decode_fhir(encode(resource)).rejected] == ["no_value"]


def test_acvpu_and_supplemental_oxygen_via_the_vigil_code_system() -> None:
    acvpu = observation("x", 0, "")
    acvpu["code"] = {"coding": [{"system": "urn:vigil:code", "code": "ACVPU"}]}
    del acvpu["valueQuantity"]
    acvpu["valueCodeableConcept"] = {"text": "Voice"}
    assert (only_event(encode(acvpu)).code, only_event(encode(acvpu)).value) == ("ACVPU", 2.0)
    o2 = observation("x", 0, "")
    o2["code"] = {"coding": [{"system": "urn:vigil:code", "code": "SupplementalO2"}]}
    del o2["valueQuantity"]
    o2["valueBoolean"] = True
    assert only_event(encode(o2)).value == 1.0


# --- status, subject, time ------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["final", "amended", "corrected", "preliminary"])
def test_accepted_statuses(status: str) -> None:
    assert len(decode_fhir(encode(observation("8867-4", 80, "/min", status=status))).events) == 1


@pytest.mark.parametrize("status", ["registered", "cancelled", "unknown"])
def test_other_statuses_are_not_final(status: str) -> None:
    result = decode_fhir(encode(observation("8867-4", 80, "/min", status=status)))
    assert result.events == [] and [r.reason for r in result.rejected] == ["not_final"]


def test_entered_in_error_is_a_retraction_not_a_result_not_yet_final() -> None:
    """``entered-in-error`` withdraws a value sent before (on the wrong patient, charted in error): its
    own dead-letter reason, so an operator sees a withdrawal (the value already read stays in the
    window: docs/interop.md), where ``not_final`` hid it among the results not yet final."""
    result = decode_fhir(encode(observation("8867-4", 80, "/min", status="entered-in-error")))
    assert result.events == [] and [r.reason for r in result.rejected] == ["retracted"]
    assert "entered-in-error" in result.rejected[0].detail
    given = administration(atc("J01CR05"), status="entered-in-error")
    done = procedure("30088009", status="entered-in-error")
    for resource in (given, done):
        assert [r.reason for r in decode_fhir(encode(resource)).rejected] == ["retracted"]
    from vigil.schemas.codecs.fhir_out import operation_outcome

    (issue,) = operation_outcome(result.rejected)["issue"]
    assert issue["code"] == "business-rule" and issue["details"]["coding"][0]["code"] == "retracted"


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ({"reference": "Patient/123"}, "123"),
        ({"reference": "https://ehr.example/fhir/Patient/123"}, "123"),
        ({"reference": "Patient/123/_history/7"}, "123"),
        ({"identifier": {"system": "urn:mrn", "value": "MRN-5"}}, "MRN-5"),
    ],
)
def test_subject_forms(subject: dict[str, Any], expected: str) -> None:
    assert only_event(encode(observation("8867-4", 80, "/min", subject=subject))).patient_id == expected


@pytest.mark.parametrize(
    "subject",
    [None, {"reference": "Group/ward-7"}, {"reference": "urn:uuid:0f0f0f0f-0000-4000-8000-000000000000"}, {}],
)
def test_missing_or_non_patient_subject(subject: dict[str, Any] | None) -> None:
    resource = observation("8867-4", 80, "/min")
    if subject is None:
        del resource["subject"]
    else:
        resource["subject"] = subject
    assert [r.reason for r in decode_fhir(encode(resource)).rejected] == ["missing_subject"]


@pytest.mark.parametrize(
    "time_fields",
    [
        {"effectiveDateTime": "2024-03-15"},
        {"effectiveDateTime": "2024-03"},
        {"effectiveDateTime": "2024-03-15T14:25:00"},  # no offset: invalid FHIR, refused precisely
        {},
    ],
)
def test_times_without_a_timezone_are_missing_time(time_fields: dict[str, str]) -> None:
    resource = observation("8867-4", 80, "/min")
    del resource["effectiveDateTime"]
    resource.update(time_fields)
    assert [r.reason for r in decode_fhir(encode(resource)).rejected] == ["missing_time"]


def test_effective_period_start_and_instant_are_used() -> None:
    resource = observation("8867-4", 80, "/min")
    del resource["effectiveDateTime"]
    resource["effectivePeriod"] = {"start": "2024-03-15T10:00:00-04:00", "end": "2024-03-15T10:05:00-04:00"}
    assert only_event(encode(resource)).observed_at == datetime(2024, 3, 15, 14, 0, tzinfo=UTC)
    del resource["effectivePeriod"]
    resource["effectiveInstant"] = "2024-03-15T14:01:02.5Z"
    assert only_event(encode(resource)).observed_at.second == 2


def test_encounter_reference_is_carried() -> None:
    resource = observation("8867-4", 80, "/min", encounter={"reference": "Encounter/enc-9"})
    assert only_event(encode(resource)).encounter == "enc-9"


# --- idempotent event ids -------------------------------------------------------------------------


def test_event_ids_are_deterministic_and_change_with_the_resource_version() -> None:
    resource = timed("observation-example-bloodpressure.json")
    first = [e.event_id for e in decode_fhir(encode(resource)).events]
    assert first == [e.event_id for e in decode_fhir(encode(resource)).events]
    amended = copy.deepcopy(resource)
    amended["meta"]["versionId"] = "2"
    amended["status"] = "amended"
    assert set(first).isdisjoint(e.event_id for e in decode_fhir(encode(amended)).events)


def test_resources_without_id_get_a_content_derived_event_id() -> None:
    resource = observation("8867-4", 80, "/min")
    del resource["id"]
    assert only_event(encode(resource)).event_id == only_event(encode(resource)).event_id
    other = observation("8867-4", 81, "/min")
    del other["id"]
    assert only_event(encode(other)).event_id != only_event(encode(resource)).event_id


# --- treatments -----------------------------------------------------------------------------------


def administration(medication: dict[str, Any], **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationAdministration",
        "id": "ma-1",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "context": {"reference": "Encounter/e1"},
        "effectiveDateTime": "2024-03-15T15:02:00+00:00",
        **medication,
    }
    resource.update(extra)
    return resource


def atc(code: str, display: str | None = None) -> dict[str, Any]:
    coding = {"system": "http://www.whocc.no/atc", "code": code}
    if display:
        coding["display"] = display
    return {"medicationCodeableConcept": {"coding": [coding]}}


def test_antibiotic_by_atc_j01() -> None:
    event = only_event(encode(administration(atc("J01CR05", "piperacillin and beta-lactamase inhibitor"))))
    assert (event.code, event.kind, event.value, event.encounter) == ("antibiotic", "treatment", 1.0, "e1")


def test_antibiotic_by_rxnorm_and_by_text() -> None:
    rx = {
        "medicationCodeableConcept": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "2193"}]
        }
    }
    assert only_event(encode(administration(rx))).code == "antibiotic"
    text = {"medicationCodeableConcept": {"text": "Meropenem 1 g IV"}}
    assert only_event(encode(administration(text))).code == "antibiotic"


def test_vasopressor_rate_in_micrograms_per_kg_per_minute() -> None:
    resource = administration(
        atc("C01CA03", "norepinephrine"),
        dosage={"rateQuantity": {"value": 0.12, "unit": "mcg/kg/min"}},
    )
    event = only_event(encode(resource))
    assert (event.code, event.value, event.unit) == ("vasopressor", 0.12, "ug/kg/min")


def test_vasopressor_without_rate_is_missing_dose() -> None:
    result = decode_fhir(encode(administration(atc("C01CA03"))))
    assert [r.reason for r in result.rejected] == ["missing_dose"]


def test_crystalloid_volume_in_ml_or_l() -> None:
    ml = administration(
        {"medicationCodeableConcept": {"text": "Sodium chloride 0.9% infusion"}},
        dosage={"dose": {"value": 500, "unit": "mL", "system": "http://unitsofmeasure.org", "code": "mL"}},
    )
    assert only_event(encode(ml)).value == 500.0
    litres = administration(
        {"medicationCodeableConcept": {"text": "Hartmann's solution"}},
        dosage={"dose": {"value": 1, "system": "http://unitsofmeasure.org", "code": "L"}},
    )
    assert (only_event(encode(litres)).code, only_event(encode(litres)).value) == ("crystalloid_ml", 1000.0)


def test_contained_medication_reference() -> None:
    resource = administration(
        {"medicationReference": {"reference": "#med"}},
        contained=[
            {
                "resourceType": "Medication",
                "id": "med",
                "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "J01DD04"}]},
            }
        ],
    )
    assert only_event(encode(resource)).code == "antibiotic"


def test_medication_entry_of_the_same_bundle() -> None:
    base = "https://ehr.example/fhir"
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": f"{base}/Medication/noradr",
                "resource": {
                    "resourceType": "Medication",
                    "id": "noradr",
                    "code": {"text": "Noradrenaline 4 mg/50 mL"},
                },
            },
            {
                "fullUrl": f"{base}/MedicationAdministration/ma-9",
                "resource": administration(
                    {"medicationReference": {"reference": "Medication/noradr"}},
                    dosage={
                        "rateQuantity": {
                            "value": 0.3,
                            "system": "http://unitsofmeasure.org",
                            "code": "ug/kg/min",
                        }
                    },
                ),
            },
        ],
    }
    result = decode_fhir(encode(bundle))
    assert [(e.code, e.value) for e in result.events] == [("vasopressor", 0.3)]
    assert [i.reason for i in result.ignored] == ["context_resource"]


def test_administration_not_done_and_unknown_medication() -> None:
    assert [r.reason for r in decode_fhir(encode(administration(atc("J01CR05"), status="not-done"))).rejected] == [
        "not_final"
    ]
    result = decode_fhir(encode(administration(atc("N02BE01", "paracetamol"))))
    assert [r.reason for r in result.rejected] == ["unmapped_code"]
    assert result.unknown_codes == {"http://www.whocc.no/atc|N02BE01": 1}


def procedure(snomed: str, **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Procedure",
        "id": f"proc-{snomed}",
        "status": "completed",
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": snomed}]},
        "subject": {"reference": "Patient/p1"},
        "performedDateTime": "2024-03-15T14:50:00Z",
    }
    resource.update(extra)
    return resource


def test_blood_culture_and_oxygen_therapy_procedures() -> None:
    assert only_event(encode(procedure("30088009"))).code == "blood_culture"
    oxygen = only_event(
        encode(procedure("57485005", performedDateTime=None, performedPeriod={"start": "2024-03-15T14:40:00Z"}))
    )
    assert (oxygen.code, oxygen.value, oxygen.kind) == ("SupplementalO2", 1.0, "assessment")


def test_procedure_rules() -> None:
    assert [r.reason for r in decode_fhir(encode(procedure("30088009", status="preparation"))).rejected] == [
        "not_final"
    ]
    assert [r.reason for r in decode_fhir(encode(procedure("80146002"))).rejected] == ["unmapped_code"]


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "invalid_json"),
        (b"{not json", "invalid_json"),
        (b"\xff\xfe\x00", "invalid_json"),
        (b"[1, 2]", "schema"),
        (b'{"status": "final"}', "schema"),
        (b'{"resourceType": "MedicationRequest", "id": "x"}', "unsupported_resource"),
        (b'{"resourceType": "Observation", "status": "final"}', "schema"),
        (b" " * (MAX_PAYLOAD_BYTES + 1), "too_large"),
    ],
)
def test_bad_payloads_are_rejected_with_a_stable_reason(payload: bytes, reason: str) -> None:
    result = decode_fhir(payload)
    assert result.events == []
    assert [r.reason for r in result.rejected] == [reason]


def test_context_resource_alone_is_ignored() -> None:
    result = decode_fhir(b'{"resourceType": "Patient", "id": "p1"}')
    assert result.rejected == [] and [i.reason for i in result.ignored] == ["context_resource"]


def test_str_payloads_are_accepted() -> None:
    assert len(decode_fhir(json.dumps(observation("8867-4", 80, "/min"))).events) == 1


def test_interop_doc_lists_every_mapped_code() -> None:
    from vigil.schemas.codecs.loinc import MDC_TO_CANONICAL

    doc = (Path(__file__).parents[3] / "docs" / "interop.md").read_text()
    missing = [code for code in [*LOINC_TO_CANONICAL, *MDC_TO_CANONICAL] if code not in doc]
    assert missing == [], f"document these codes in docs/interop.md: {missing}"


@pytest.mark.parametrize("spoof", ["\u202e", "\u200b", "\x1b", "\x7f"])
def test_spoofed_patient_references_are_schema_dead_letters(spoof: str) -> None:
    """The codecs build events through the same strict PatientEvent (issue 16)."""
    resource = observation("8867-4", 80, "/min", subject={"reference": f"Patient/p{spoof}1"})
    result = decode_fhir(encode(resource))
    assert not result.events and [r.reason for r in result.rejected] == ["schema"]
    assert f"U+{ord(spoof):04X}" in result.rejected[0].detail


def test_observations_before_the_time_floor_are_schema_dead_letters() -> None:
    result = decode_fhir(encode(observation("8867-4", 80, "/min", effectiveDateTime="1970-01-01T00:00:00Z")))
    assert not result.events and [r.reason for r in result.rejected] == ["schema"]


# --- Encounter: a finished one is the stay's end (models.stays) ----------------------------------


def encounter(status: str = "finished", **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "id": "enc-9",
        "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2024-03-14T08:00:00Z", "end": "2024-03-15T16:40:00+01:00"},
    }
    resource.update(extra)
    return resource


def test_a_finished_encounter_is_a_discharge_at_its_end() -> None:
    event = only_event(encode(encounter()))
    assert (event.kind, event.code, event.value, event.patient_id) == ("encounter", "discharge", 1.0, "p1")
    assert event.encounter == "enc-9" and event.observed_at == datetime(2024, 3, 15, 15, 40, tzinfo=UTC)
    # the encounter an Observation names is the one its discharge ends
    obs = only_event(encode(observation("8867-4", 80, "/min", encounter={"reference": "Encounter/enc-9"})))
    assert obs.encounter == event.encounter


@pytest.mark.parametrize("status", ["cancelled", "entered-in-error"])
def test_an_inpatient_encounter_that_never_was_is_a_cancel_admit_of_itself(status: str) -> None:
    """As an ADT^A11: the stay whose events name this Encounter ends (models.stays); at the time the
    server learnt it (meta.lastUpdated), else period.end; one event id for every version of it."""
    resource = encounter(status, meta={"versionId": "4", "lastUpdated": "2024-03-16T10:00:00Z"})
    event = only_event(encode(resource))
    assert (event.kind, event.code, event.value, event.patient_id) == ("encounter", "cancel_admit", 1.0, "p1")
    assert event.encounter == "enc-9" and event.observed_at == datetime(2024, 3, 16, 10, 0, tzinfo=UTC)
    del resource["meta"]
    assert only_event(encode(resource)).observed_at == datetime(2024, 3, 15, 15, 40, tzinfo=UTC)  # period.end
    del resource["period"]
    refused = decode_fhir(encode(resource)).rejected
    assert [r.reason for r in refused] == ["missing_time"] and "without meta.lastUpdated or period.end" in refused[
        0
    ].detail
    versions = [encounter(status, meta={"versionId": v, "lastUpdated": "2024-03-16T10:00:00Z"}) for v in ("4", "5")]
    bundle = {"resourceType": "Bundle", "type": "history", "entry": [{"resource": r} for r in versions]}
    assert len({e.event_id for e in decode_fhir(encode(bundle)).events}) == 1


@pytest.mark.parametrize("kind", ["AMB", "VR", "HH", None])
def test_a_cancelled_visit_that_is_no_stay_is_context(kind: str | None) -> None:
    """A cancelled outpatient appointment is nobody's ICU stay: ignored, not a dead letter."""
    resource = encounter("cancelled", meta={"lastUpdated": "2024-03-16T10:00:00Z"})
    if kind is None:
        del resource["class"]  # R4 requires one: refused as a finished Encounter without one is
        assert [r.reason for r in decode_fhir(encode(resource)).rejected] == ["schema"]
        return
    resource["class"]["code"] = kind
    result = decode_fhir(encode(resource))
    assert result.events == [] and result.rejected == []
    assert [r.reason for r in result.ignored] == ["context_resource"] and "not a stay" in result.ignored[0].detail


@pytest.mark.parametrize("status", ["planned", "arrived", "in-progress", "onleave"])
def test_an_encounter_that_is_not_finished_is_context_even_without_class(status: str) -> None:
    resource = encounter(status)
    del resource["class"]
    result = decode_fhir(encode(resource))
    assert result.events == [] and result.rejected == []
    assert [r.reason for r in result.ignored] == ["context_resource"]


def reopened(**extra: Any) -> dict[str, Any]:
    """enc-9 in progress again: finished at 15:40 UTC, its discharge undone at 17:05."""
    history = [
        {"status": "in-progress", "period": {"start": "2024-03-14T08:00:00Z", "end": "2024-03-15T15:40:00Z"}},
        {"status": "finished", "period": {"start": "2024-03-15T15:40:00Z", "end": "2024-03-15T17:05:00Z"}},
    ]
    resource = encounter(
        "in-progress", statusHistory=history, meta={"versionId": "7", "lastUpdated": "2024-03-15T17:06:00Z"}
    )
    del resource["period"]["end"]
    resource.update(extra)
    return resource


def test_an_encounter_in_progress_again_after_finished_cancels_its_discharge() -> None:
    """A server that undoes a discharge by setting the Encounter back to in-progress, its statusHistory
    keeping the finished period (no A13 message): a ``cancel_discharge`` of that Encounter, as ADT^A13,
    when the finished period ended (else meta.lastUpdated); one id for every later version."""
    event = only_event(encode(reopened()))
    assert (event.kind, event.code, event.value, event.patient_id) == ("encounter", "cancel_discharge", 1.0, "p1")
    assert event.encounter == "enc-9" and event.observed_at == datetime(2024, 3, 15, 17, 5, tzinfo=UTC)
    later = reopened(meta={"versionId": "8", "lastUpdated": "2024-03-16T09:00:00Z"})
    assert only_event(encode(later)).event_id == event.event_id  # the next update: the same event again
    open_ended = reopened()
    del open_ended["statusHistory"][1]["period"]["end"]
    assert only_event(encode(open_ended)).observed_at == datetime(2024, 3, 15, 17, 6, tzinfo=UTC)  # lastUpdated
    del open_ended["meta"]
    refused = decode_fhir(encode(open_ended)).rejected
    assert [r.reason for r in refused] == ["missing_time"] and "reopened Encounter" in refused[0].detail
    # a second discharge, undone too, is another event
    again = reopened()
    again["statusHistory"].append(
        {"status": "finished", "period": {"start": "2024-03-16T10:00:00Z", "end": "2024-03-16T10:30:00Z"}}
    )
    second = only_event(encode(again))
    assert second.event_id != event.event_id and second.observed_at == datetime(2024, 3, 16, 10, 30, tzinfo=UTC)


def test_the_reopened_fixture_cancels_the_discharge_it_undid() -> None:
    payload = (FIXTURES / "encounter-reopened-after-discharge.json").read_bytes()
    (event,) = decode_fhir(payload, Units.of(["ICU-3"])).events
    assert (event.code, event.patient_id, event.encounter, event.ward) == (
        "cancel_discharge",
        "4420011",
        "V77120044",
        "ICU-3",
    )
    assert event.observed_at == datetime(2024, 3, 17, 8, 15, tzinfo=UTC)


def test_a_reopened_encounter_in_a_monitored_unit_resumes_there_and_places_its_results() -> None:
    units = Units.of(["ICU-3"])
    located = reopened(
        location=[{"location": {"display": "ICU-3"}, "status": "active", "period": {"start": "2024-03-14T08:00:00Z"}}]
    )
    result = decode_fhir(encode(located), units)
    (event,) = result.events
    assert (event.code, event.ward) == ("cancel_discharge", "ICU-3")
    assert [p.unit for p in result.encounters["p1", "enc-9"]] == ["ICU-3"]


@pytest.mark.parametrize(
    "history",
    [
        None,  # no history: context, as before
        [{"status": "in-progress", "period": {"start": "2024-03-14T08:00:00Z"}}],
        [{"status": "arrived", "period": {"start": "2024-03-14T07:00:00Z", "end": "2024-03-14T08:00:00Z"}}],
    ],
)
def test_an_encounter_going_on_that_was_never_finished_is_context(history: list[dict[str, Any]] | None) -> None:
    resource = encounter("in-progress") if history is None else encounter("in-progress", statusHistory=history)
    result = decode_fhir(encode(resource))
    assert result.events == [] and result.rejected == []
    assert [r.reason for r in result.ignored] == ["context_resource"]


def test_a_finished_encounter_with_history_is_its_discharge_not_a_cancel() -> None:
    resource = reopened()
    resource["status"] = "finished"
    resource["period"]["end"] = "2024-03-16T12:00:00Z"
    assert only_event(encode(resource)).code == "discharge"


@pytest.mark.parametrize(
    ("period", "reason", "detail"),
    [
        ({"start": "2024-03-14T08:00:00Z"}, "missing_time", "without period.end"),
        ({"end": "2024-03-15"}, "missing_time", "period.end is a date without a time of day"),
        ({"end": "2024-03-15T16:40:00"}, "schema", "period.end"),  # FHIR: a time of day needs its offset
    ],
)
def test_a_finished_encounter_without_a_timed_end_is_refused(period: dict[str, str], reason: str, detail: str) -> None:
    result = decode_fhir(encode(encounter(period=period)))
    assert result.events == [] and [r.reason for r in result.rejected] == [reason]
    assert detail in result.rejected[0].detail


def test_a_finished_encounter_is_checked_like_any_resource() -> None:
    no_class = encounter()
    del no_class["class"]  # required in R4
    assert [r.reason for r in decode_fhir(encode(no_class)).rejected] == ["schema"]
    no_subject = encounter()
    del no_subject["subject"]
    assert [r.reason for r in decode_fhir(encode(no_subject)).rejected] == ["missing_subject"]


# --- Encounter moves: out of the monitored units ends the stay, where the site names its units ----

ICU = Units.of(["MICU", "SICU"], away=["OR"])


def place(name: str, status: str, start: str, end: str | None = None, how: str = "display") -> dict[str, Any]:
    """One ``Encounter.location``: the unit named by its display, its Location id or its identifier."""
    ref: dict[str, Any] = {
        "display": {"display": name},
        "reference": {"reference": f"Location/{name}", "display": f"{name} ward, 4th floor"},
        "identifier": {"identifier": {"system": "urn:hosp:units", "value": name}},
    }[how]
    period = {"start": start, **({"end": end} if end else {})}
    return {"location": ref, "status": status, "period": period}


def moved(*places: dict[str, Any], status: str = "in-progress", version: str = "3") -> dict[str, Any]:
    resource = encounter(status, location=list(places), period={"start": "2024-03-14T08:00:00Z"})
    resource["meta"] = {"versionId": version}
    return resource


MICU_TO_WARD = (
    place("MICU", "completed", "2024-03-14T08:00:00Z", "2024-03-16T10:00:00Z"),
    place("4WEST", "active", "2024-03-16T10:05:00Z"),
)


@pytest.mark.parametrize("how", ["display", "reference", "identifier"])
def test_an_encounter_whose_newest_move_leaves_the_icu_for_a_ward_is_a_transfer_out(how: str) -> None:
    icu, ward = (place(p["location"]["display"], p["status"], **p["period"], how=how) for p in MICU_TO_WARD)
    result = decode_fhir(encode(moved(icu, ward)), ICU)
    assert result.rejected == [] and result.ignored == []
    (event,) = result.events
    assert (event.kind, event.code, event.value, event.patient_id) == ("encounter", "transfer_out", 1.0, "p1")
    assert event.observed_at == datetime(2024, 3, 16, 10, 0, tzinfo=UTC)  # when the ICU was left
    assert (event.ward, event.encounter) == ("MICU", "enc-9")


def test_each_update_of_the_encounter_names_the_same_move_and_the_next_move_ends_nothing() -> None:
    """Every update sends the location history again: the same move is the same event (the stream
    counts it ``duplicate``, not a second end); a move on from the ward ends nothing."""
    first = decode_fhir(encode(moved(*MICU_TO_WARD, version="3")), ICU).events
    again = decode_fhir(encode(moved(*MICU_TO_WARD, version="4")), ICU).events
    assert [e.event_id for e in first] == [e.event_id for e in again] and len(first) == 1
    on = (
        MICU_TO_WARD[0],
        place("4WEST", "completed", "2024-03-16T10:05:00Z", "2024-03-17T09:00:00Z"),
        place("5EAST", "active", "2024-03-17T09:10:00Z"),
    )
    result = decode_fhir(encode(moved(*on, version="5")), ICU)
    assert result.events == [] and [r.reason for r in result.ignored] == ["context_resource"]
    assert "leaves no monitored or away unit" in result.ignored[0].detail


def test_out_of_theatre_to_a_ward_is_a_transfer_out_the_stream_decides_on() -> None:
    via_or = (
        place("MICU", "completed", "2024-03-14T08:00:00Z", "2024-03-16T08:00:00Z"),
        place("OR", "completed", "2024-03-16T08:10:00Z", "2024-03-16T11:00:00Z"),
        place("4WEST", "active", "2024-03-16T11:20:00Z"),
    )
    (event,) = decode_fhir(encode(moved(*via_or)), ICU).events
    assert event.code == "transfer_out" and event.ward is None  # the stay's own unit, not theatre
    assert event.observed_at == datetime(2024, 3, 16, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("places", "why"),
    [
        (
            (
                place("MICU", "completed", "2024-03-14T08:00:00Z", "2024-03-16T10:00:00Z"),
                place("SICU", "active", "2024-03-16T10:05:00Z"),
            ),
            "the stay goes on",
        ),
        (
            (
                place("MICU", "completed", "2024-03-14T08:00:00Z", "2024-03-16T10:00:00Z"),
                place("OR", "active", "2024-03-16T10:05:00Z"),
            ),
            "the stay goes on",
        ),
        (
            (
                place("4WEST", "completed", "2024-03-14T08:00:00Z", "2024-03-16T10:00:00Z"),
                place("MICU", "active", "2024-03-16T10:05:00Z"),
            ),
            "leaves no monitored or away unit",
        ),
        ((place("MICU", "active", "2024-03-14T08:00:00Z"),), "no move"),
        (
            (
                place("MICU", "completed", "2024-03-14T08:00:00Z", "2024-03-16T10:00:00Z"),
                place("4WEST", "planned", "2024-03-16T10:05:00Z"),
            ),
            "no move",
        ),
    ],
)
def test_an_encounter_whose_newest_move_stays_in_the_units_is_context(
    places: tuple[dict[str, Any], ...], why: str
) -> None:
    result = decode_fhir(encode(moved(*places)), ICU)
    assert result.events == [] and result.rejected == []
    (ignored,) = result.ignored
    assert ignored.reason == "context_resource" and why in ignored.detail


def test_without_monitored_units_an_encounters_moves_are_not_read() -> None:
    invalid = moved(*MICU_TO_WARD)
    del invalid["class"]  # not even checked: context, as before
    for resource, units in [(moved(*MICU_TO_WARD), Units()), (invalid, Units()), (encounter("in-progress"), ICU)]:
        result = decode_fhir(encode(resource), units)
        assert result.events == [] and result.rejected == []
        assert [r.reason for r in result.ignored] == ["context_resource"]
    assert [r.reason for r in decode_fhir(encode(invalid), ICU).rejected] == ["schema"]  # read: checked


def test_a_status_that_is_not_text_is_a_schema_dead_letter_where_the_site_names_its_units() -> None:
    """Whether an Encounter is read for its moves is decided before the resource is checked: a list
    for a status (any resource's) was a decoder error (``internal``), not the schema dead letter it is."""
    observed = decode_fhir(encode(observation("8867-4", 80, "/min", status=[])), ICU)
    assert [r.reason for r in observed.rejected] == ["schema"]
    unknown = decode_fhir(encode(moved(*MICU_TO_WARD) | {"status": {"a": 1}}), ICU)  # not one that goes on
    assert unknown.rejected == [] and [r.reason for r in unknown.ignored] == ["context_resource"]


def test_a_component_without_its_code_is_unmapped_not_a_decoder_error() -> None:
    """``component.code`` is required (1..1), but the models let a ``null`` one pass."""
    component = {"code": None, "valueQuantity": {"value": 80, "code": "mm[Hg]"}}
    panel = observation("85354-9", 0, "mm[Hg]", component=[component])
    del panel["valueQuantity"]
    result = decode_fhir(encode(panel))
    assert [r.reason for r in result.rejected] == ["unmapped_code"] and result.unknown_codes == {"no-coding": 1}


def test_a_move_whose_time_left_has_no_offset_is_refused() -> None:
    dated = (place("MICU", "completed", "2024-03-14", "2024-03-16"), MICU_TO_WARD[1])
    result = decode_fhir(encode(moved(*dated)), ICU)
    assert result.events == [] and [r.reason for r in result.rejected] == ["missing_time"]
    assert "the location left: period.end is a date without a time of day" in result.rejected[0].detail


def test_rooms_and_beds_listed_beside_the_units_are_not_moves() -> None:
    """Some EHRs list the unit, the room and the bed as locations of their own: a bed move inside the
    ICU ends nothing, and the move from the ICU to a ward is read from the units."""

    def bed(name: str, status: str, start: str, end: str | None = None) -> dict[str, Any]:
        kind = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/location-physical-type", "code": "bd"}]}
        return place(name, status, start, end) | {"physicalType": kind}

    in_icu = (
        place("MICU", "active", "2024-03-14T08:00:00Z"),
        bed("MICU bed 1", "completed", "2024-03-14T08:00:00Z", "2024-03-15T09:00:00Z"),
        bed("MICU bed 2", "active", "2024-03-15T09:00:00Z"),
    )
    result = decode_fhir(encode(moved(*in_icu)), ICU)
    assert result.events == [] and [r.reason for r in result.ignored] == ["context_resource"]
    out = (
        MICU_TO_WARD[0],
        bed("MICU bed 2", "completed", "2024-03-15T09:00:00Z", "2024-03-16T10:30:00Z"),  # later than the unit's end
        MICU_TO_WARD[1],
        bed("4WEST bed 7", "active", "2024-03-16T10:05:00Z"),
    )
    (event,) = decode_fhir(encode(moved(*out)), ICU).events
    assert (event.code, event.ward, event.observed_at) == (
        "transfer_out",
        "MICU",
        datetime(2024, 3, 16, 10, 0, tzinfo=UTC),
    )


def test_the_transfer_fixture_ends_the_stay_at_the_fixtures_icu() -> None:
    payload = (FIXTURES / "encounter-transfer-to-ward.json").read_bytes()
    (event,) = decode_fhir(payload, Units.of(["icu-3"])).checked(datetime.now(UTC)).events
    assert (event.code, event.ward, event.encounter, event.patient_id) == (
        "transfer_out",
        "ICU-3",
        "V77120044",
        "4420011",
    )
    assert event.observed_at == datetime(2024, 3, 16, 10, 0, tzinfo=UTC)
    assert decode_fhir(payload).events == []  # no units named: context


def test_a_transfer_out_days_after_a_discharge_undone_ends_the_stay() -> None:
    """The statusHistory keeps the finished period in every later version: the real move out of the
    ICU two days after the discharge was undone is a ``transfer_out``, not the old
    ``cancel_discharge`` again (a duplicate the stream drops: the stay never ended)."""
    payload = (FIXTURES / "encounter-transfer-after-reopened-discharge.json").read_bytes()
    (event,) = decode_fhir(payload, Units.of(["ICU-3"], ["OR"])).checked(datetime.now(UTC)).events
    assert (event.code, event.ward, event.encounter, event.patient_id) == (
        "transfer_out",
        "ICU-3",
        "V77120044",
        "4420011",
    )
    assert event.observed_at == datetime(2024, 3, 19, 10, 0, tzinfo=UTC)
    # the same move without the history: the same event (one id, whichever version comes)
    plain = json.loads(payload)
    del plain["statusHistory"]
    assert [e.event_id for e in decode_fhir(encode(plain), Units.of(["ICU-3"])).events] == [event.event_id]
    # no units named: the move ends nothing, the update is the undoing it was
    assert [e.code for e in decode_fhir(payload).events] == ["cancel_discharge"]


@pytest.mark.parametrize(
    ("left", "now", "why"),
    [
        ("2024-03-17T06:00:00+00:00", "4WEST", "the move came before the discharge was undone"),
        ("2024-03-19T10:00:00+00:00", "ICU-4", "the move stays in the monitored units"),
    ],
)
def test_a_reopened_encounter_whose_move_ends_nothing_since_is_still_the_undoing(left: str, now: str, why: str) -> None:
    """Only a move out of the monitored units after the undoing is news: otherwise the update is the
    ``cancel_discharge`` it was (the same event again, or the undoing itself where its own update
    never came)."""
    resource = load("encounter-transfer-after-reopened-discharge.json")
    resource["location"][0]["period"]["end"] = left
    resource["location"][1]["location"] = {"display": now}
    (event,) = decode_fhir(encode(resource), Units.of(["ICU-3", "ICU-4"])).events
    assert event.code == "cancel_discharge", why
    assert event.observed_at == datetime(2024, 3, 17, 8, 15, tzinfo=UTC)


# --- FHIR messages: an ADT cancel (A13, A12, A11) converted by the HL7 v2-to-FHIR guide ----------

A12_FIXTURE = "bundle-message-adt-a12-cancel-transfer.json"
A13_FIXTURE = "bundle-message-adt-a13-cancel-discharge.json"


def entries_of(bundle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def test_an_a13_message_cancels_the_discharge_at_the_time_recorded() -> None:
    """ADT^A13 as a message Bundle: the Encounter is just in-progress again, the header's event says
    the discharge was entered in error. Without EVN-6 the Provenance's recorded time (EVN-2)."""
    result = decode_fhir((FIXTURES / A13_FIXTURE).read_bytes(), Units.of(["ICU-3"]))
    (event,) = result.checked(datetime.now(UTC)).events
    assert (event.kind, event.code, event.patient_id, event.encounter, event.ward) == (
        "encounter",
        "cancel_discharge",
        "4420011",
        "V77120044",
        "ICU-3",
    )
    assert event.observed_at == datetime(2024, 3, 17, 8, 15, tzinfo=UTC)
    assert result.rejected == [] and {r.reason for r in result.ignored} == {"context_resource"}
    # a cancel needs no monitored units: it resumes what a discharge ended
    assert [e.code for e in decode_fhir((FIXTURES / A13_FIXTURE).read_bytes()).events] == ["cancel_discharge"]


def test_an_a12_message_back_into_a_monitored_unit_cancels_the_transfer() -> None:
    payload = (FIXTURES / A12_FIXTURE).read_bytes()
    (event,) = decode_fhir(payload, Units.of(["ICU-3"])).events
    assert (event.code, event.ward, event.encounter) == ("cancel_transfer", "ICU-3", "V77120044")
    assert event.observed_at == datetime(2024, 3, 16, 10, 38, tzinfo=UTC)  # EVN-6: Provenance.occurredDateTime
    # as ADT^A12: without monitored units, or back into a ward, the cancelled transfer ended no stay
    (none,) = [r for r in decode_fhir(payload).ignored if r.reason == "adt_transfer"]
    assert "no monitored units" in none.detail
    ward = decode_fhir(payload, Units.of(["MICU"]))
    assert ward.events == [] and [r.reason for r in ward.ignored].count("adt_transfer") == 1


def test_an_a11_message_cancels_the_admission_of_its_encounter() -> None:
    """ADT^A11 converted to a message Bundle: the header's event says the admission was cancelled,
    whatever status the converter gave the Encounter: a ``cancel_admit`` of that visit, at EVN-2."""
    bundle = load(A13_FIXTURE)
    (header,) = entries_of(bundle, "MessageHeader")
    header["eventCoding"]["code"] = "A11"
    (event,) = decode_fhir(encode(bundle), Units.of(["ICU-3"])).events
    assert (event.code, event.encounter, event.ward) == ("cancel_admit", "V77120044", "ICU-3")
    assert event.observed_at == datetime(2024, 3, 17, 8, 15, tzinfo=UTC)


def test_a_cancel_sent_again_is_the_same_event() -> None:
    bundle = load(A13_FIXTURE)
    again = copy.deepcopy(bundle)
    again["id"], again["timestamp"] = "adt-a13-0108", "2024-03-17T09:00:00+00:00"  # the engine resent it
    first, second = (decode_fhir(encode(b)).events for b in (bundle, again))
    assert [e.event_id for e in first] == [e.event_id for e in second] and len(first) == 1


@pytest.mark.parametrize(
    ("provenance", "timestamp", "expected"),
    [
        ({"occurredDateTime": "2024-03-17T08:10:00+00:00"}, None, datetime(2024, 3, 17, 8, 10, tzinfo=UTC)),
        (None, "2024-03-17T08:15:02+00:00", datetime(2024, 3, 17, 8, 15, 2, tzinfo=UTC)),
        ({"occurredDateTime": "2024-03-17"}, "2024-03-17T08:15:02+00:00", "missing_time"),
        (None, None, "missing_time"),
    ],
)
def test_a_cancels_time_is_evn6_then_evn2_then_the_message_time(
    provenance: dict[str, str] | None, timestamp: str | None, expected: Any
) -> None:
    bundle = load(A13_FIXTURE)
    if timestamp is None:
        del bundle["timestamp"]
    else:
        bundle["timestamp"] = timestamp
    (prov,) = entries_of(bundle, "Provenance")
    if provenance is None:
        bundle["entry"] = [e for e in bundle["entry"] if e["resource"] is not prov]
    else:
        prov.update(provenance)
    result = decode_fhir(encode(bundle))
    if expected == "missing_time":
        assert result.events == [] and [r.reason for r in result.rejected] == ["missing_time"]
    else:
        assert [e.observed_at for e in result.events] == [expected]


def test_only_a_message_whose_event_is_a_cancel_about_the_encounter_cancels() -> None:
    """A transaction with the same header, another event (A08, an update), another code system, or a
    header whose focus is another Encounter: the Encounter is context, as before."""
    variants = []
    transaction = load(A13_FIXTURE)
    transaction["type"] = "transaction"
    for entry in transaction["entry"]:
        entry["request"] = {"method": "PUT", "url": entry["resource"]["resourceType"]}
    variants.append(transaction)
    for change in (
        {"code": "A08"},
        {"system": "urn:local:events"},
        {"code": []},  # not text (the property test's find: a TypeError, an `internal` dead letter, before)
        {"code": {"A13": 1}},
    ):
        other = load(A13_FIXTURE)
        entries_of(other, "MessageHeader")[0]["eventCoding"].update(change)
        variants.append(other)
    elsewhere = load(A13_FIXTURE)
    entries_of(elsewhere, "MessageHeader")[0]["focus"] = [{"reference": "Encounter/ED-0001"}]
    variants.append(elsewhere)
    for bundle in variants:
        for units in (Units(), Units.of(["ICU-3"])):
            result = decode_fhir(encode(bundle), units)
            assert result.events == [] and result.rejected == [], bundle.get("type")
            (encounter,) = [r for r in result.ignored if r.detail.startswith("entry[2] Encounter")]
            assert encounter.reason == "context_resource"


def test_a_message_header_first_needs_no_full_url_and_elsewhere_needs_one() -> None:
    """FHIR requires the MessageHeader first (bdl-12): found there without a fullUrl; a sender that
    puts it elsewhere is read too, by its fullUrl. A Provenance without a fullUrl is not found: the
    message's timestamp dates the cancel."""
    bundle = load(A13_FIXTURE)
    for entry in bundle["entry"]:
        del entry["fullUrl"]
    (event,) = decode_fhir(encode(bundle)).events
    assert (event.code, event.observed_at) == ("cancel_discharge", datetime(2024, 3, 17, 8, 15, 2, tzinfo=UTC))
    moved_header = load(A13_FIXTURE)
    moved_header["entry"].append(moved_header["entry"].pop(0))
    assert [e.code for e in decode_fhir(encode(moved_header)).events] == ["cancel_discharge"]


def test_a_cancel_of_a_patient_it_cannot_name_is_refused() -> None:
    bundle = load(A13_FIXTURE)
    del entries_of(bundle, "Encounter")[0]["subject"]
    assert [r.reason for r in decode_fhir(encode(bundle)).rejected] == ["missing_subject"]


def test_an_unknown_key_of_a_resource_is_never_quoted_in_its_dead_letter() -> None:
    """A key the FHIR model does not know can be a patient's name: its dead letter named it."""
    resource = {**observation("8867-4", 90, "/min"), "Jane_Doe_1954": "x"}
    [rejected] = decode_fhir(json.dumps(resource)).rejected
    assert "Jane_Doe" not in rejected.detail and "(unexpected field)" in rejected.detail
