"""LOINC 2708-6 ("oxygen saturation in arterial blood"): the bedside SpO2 (``O2Sat``, NEWS2's) unless a
result says positively that it is a laboratory's blood gas (the model's ``SaO2``), by one rule in both
codecs (``loinc.saturation_code``). Monitors and interface engines code SpO2 as 2708-6 alone: read as
SaO2, NEWS2 lost its saturation without a word."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from vigil.models.early_warning import news2, observations_from_row
from vigil.schemas.codecs.fhir import decode_fhir
from vigil.schemas.codecs.hl7v2 import decode_hl7v2
from vigil.schemas.events import PatientEvent

CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
MDC = "urn:iso:std:iso:11073:10101"
BLOOD_GAS_ORDER = "OBR|1|||24336-0^Gas panel - Arterial blood^LN|||20250101095500+0000"
VITALS_ORDER = "OBR|1|||vitals|||20250101095500+0000"


def category(code: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": CATEGORY, "code": code}]}]


def saturation(codings: list[tuple[str, str]], value: float = 86, **extra: Any) -> dict[str, Any]:
    """A saturation Observation as a monitor's gateway sends it: a device, no category."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": "sat-1",
        "status": "final",
        "code": {"coding": [{"system": s, "code": c} for s, c in codings]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2025-01-01T10:00:00Z",
        "device": {"display": "bedside monitor"},
        "valueQuantity": {"value": value, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
    }
    resource.update(extra)
    return resource


def fhir_event(resource: dict[str, Any]) -> PatientEvent:
    result = decode_fhir(json.dumps(resource).encode()).checked(datetime.now(UTC))
    assert result.rejected == [] and len(result.events) == 1, (result.rejected, result.events)
    return result.events[0]


def oru(obx_3: str, obr: str = VITALS_ORDER, value: float = 86) -> bytes:
    segments = [
        "MSH|^~\\&|MONGW|ICU|VIGIL|HOSP|20250101100000+0000||ORU^R01|M1|P|2.5.1",
        "PID|||p1^^^HOSP^MR",
        "PV1||I|MICU",
        obr,
        f"OBX|1|NM|{obx_3}||{value}|%|||||F|||20250101100000+0000",
    ]
    return "\r".join(segments).encode()


def hl7_codes(payload: bytes) -> list[str]:
    result = decode_hl7v2(payload).checked(datetime.now(UTC))
    assert result.rejected == [], result.rejected
    return [e.code for e in result.events]


def news2_of(event: PatientEvent) -> tuple[int, list[str]]:
    """NEWS2 of a row of normal vital signs on room air with the decoded saturation in it."""
    row = {"Resp": 18, "SBP": 120, "HR": 80, "Temp": 37.0, "FiO2": 0.21, event.code: event.value}
    score = news2(observations_from_row(row))
    return score.total, list(score.missing)


# ------------------------------------------------------------ a monitor's SpO2 coded 2708-6


@pytest.mark.parametrize("system", ["http://loinc.org", "LN", "LOINC"])
def test_a_monitors_2708_6_without_a_category_is_spo2_and_news2_scores_it(system: str) -> None:
    """A gateway's SpO2 of 86 % coded 2708-6 alone became SaO2: NEWS2 fell from 3 to 0 and listed
    its saturation missing, and the model's blood-gas input filled at monitor rate."""
    event = fhir_event(saturation([(system, "2708-6")]))
    assert (event.code, event.value, event.kind) == ("O2Sat", 86.0, "vital")
    total, missing = news2_of(event)
    assert total == 3 and "spo2" not in missing  # RCP NEWS2 2017, SpO2 scale 1: <= 91 % scores 3


@pytest.mark.parametrize("system", ["http://loinc.org", "LN", "LOINC"])
def test_the_vital_signs_category_keeps_2708_6_spo2_whatever_the_loinc_system_spelling(system: str) -> None:
    """The rule knew only ``http://loinc.org``: ``LN`` or ``LOINC`` with the vital-signs category
    was SaO2."""
    assert fhir_event(saturation([(system, "2708-6")], category=category("vital-signs"))).code == "O2Sat"


def test_an_hl7_monitor_gateways_2708_6_is_spo2_and_news2_scores_it() -> None:
    (code,) = hl7_codes(oru("2708-6^SpO2^LN"))
    assert code == "O2Sat"
    event = decode_hl7v2(oru("2708-6^SpO2^LN")).events[0]
    assert news2_of(event)[0] == 3


# ------------------------------------------------------------ a laboratory's blood gas


def test_a_laboratory_blood_gas_is_sao2_in_fhir() -> None:
    assert fhir_event(saturation([("http://loinc.org", "2708-6")], category=category("laboratory"))).code == "SaO2"


def test_a_blood_gas_panels_saturation_component_is_sao2() -> None:
    panel = saturation([("http://loinc.org", "24336-0")])
    del panel["valueQuantity"]
    panel["component"] = [
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "2708-6"}]},
            "valueQuantity": {"value": 97, "system": "http://unitsofmeasure.org", "code": "%"},
        }
    ]
    assert fhir_event(panel).code == "SaO2"


@pytest.mark.parametrize(
    ("specimen_type", "code"),
    [
        ({"system": "http://snomed.info/sct", "code": "122552005"}, "SaO2"),  # Arterial blood specimen
        ({"system": "http://terminology.hl7.org/CodeSystem/v2-0487", "code": "BLDA"}, "SaO2"),
        ({"system": "http://snomed.info/sct", "code": "122555007"}, "O2Sat"),  # venous: not the arterial gas
    ],
)
def test_a_specimen_of_arterial_blood_makes_2708_6_a_blood_gas(specimen_type: dict[str, str], code: str) -> None:
    specimen = {"resourceType": "Specimen", "id": "abg", "type": {"coding": [specimen_type]}}
    contained = saturation([("http://loinc.org", "2708-6")], contained=[specimen], specimen={"reference": "#abg"})
    assert fhir_event(contained).code == code
    bundled = saturation([("http://loinc.org", "2708-6")], specimen={"reference": "Specimen/abg"})
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:1b7f0a52-3c5e-4d7e-9a55-0b1c2d3e4f50", "resource": specimen},
            {"fullUrl": "urn:uuid:2c8e1b63-4d6f-4e8f-8b66-1c2d3e4f5a61", "resource": bundled},
        ],
    }
    result = decode_fhir(json.dumps(bundle).encode())
    assert [e.code for e in result.events] == [code], result.rejected


def test_what_is_a_vital_sign_or_a_pulse_oximeter_stays_spo2_even_from_a_laboratory() -> None:
    both = category("laboratory") + category("vital-signs")
    assert fhir_event(saturation([("http://loinc.org", "2708-6")], category=both)).code == "O2Sat"
    oximeter = [("http://loinc.org", "2708-6"), ("http://loinc.org", "59408-5")]
    assert fhir_event(saturation(oximeter, category=category("laboratory"))).code == "O2Sat"


@pytest.mark.parametrize(
    "obr",
    [
        BLOOD_GAS_ORDER,
        "OBR|1|||24338-6^Gas panel - Blood^LN|||20250101095500+0000",
        "OBR|1|||24341-0^Gas and carbon monoxide panel - Arterial blood^LOINC|||20250101095500+0000",
        "OBR|1|||ABG^Arterial blood gas^L^24336-0^Gas panel - Arterial blood^LN|||20250101095500+0000",
    ],
)
def test_an_hl7_blood_gas_orders_2708_6_is_sao2(obr: str) -> None:
    assert hl7_codes(oru("2708-6^Oxygen saturation in Arterial blood^LN", obr)) == ["SaO2"]


def test_an_hl7_order_is_told_by_its_own_obr_and_patient() -> None:
    """The OBX under a vitals order after a blood gas order is the bedside's; so is a second
    patient's OBX after the first patient's blood gas."""
    blood_gas = "OBX|1|NM|2708-6^SaO2^LN||97|%|||||F|||20250101100000+0000"
    monitor = "OBX|2|NM|2708-6^SpO2^LN||93|%|||||F|||20250101100000+0000"
    header = "MSH|^~\\&|LIS|ICU|VIGIL|HOSP|20250101100000+0000||ORU^R01|M2|P|2.5.1"
    orders = [header, "PID|||p1^^^HOSP^MR", BLOOD_GAS_ORDER, blood_gas, VITALS_ORDER, monitor]
    assert hl7_codes("\r".join(orders).encode()) == ["SaO2", "O2Sat"]
    patients = [header, "PID|||p1^^^HOSP^MR", BLOOD_GAS_ORDER, blood_gas, "PID|||p2^^^HOSP^MR", monitor]
    assert hl7_codes("\r".join(patients).encode()) == ["SaO2", "O2Sat"]


def test_a_site_local_oximetry_code_is_never_a_blood_gas() -> None:
    from vigil.schemas.codecs.loinc import saturation_code

    assert saturation_code("O2Sat", [("L", "SPO2")], blood_gas=True) == "O2Sat"
    assert saturation_code("HR", [("LN", "2708-6")], blood_gas=True) == "HR"  # only a saturation


# ------------------------------------------------------------ one rule, both codecs


FHIR_SYSTEM = {"LN": "http://loinc.org", "LOINC": "LOINC", "MDC": MDC}
TEXT = {"2708-6": "SpO2", "59408-5": "SpO2 by pulse oximetry", "150456": "MDC_PULS_OXIM_SAT_O2"}


@pytest.mark.parametrize(
    ("codings", "in_a_blood_gas"),
    [
        ([("LN", "2708-6")], "SaO2"),
        ([("LOINC", "2708-6")], "SaO2"),
        ([("LN", "2708-6"), ("MDC", "150456")], "O2Sat"),  # a monitor's SpO2 with both codes
        ([("MDC", "150456"), ("LN", "2708-6")], "O2Sat"),
        ([("LN", "2708-6"), ("LN", "59408-5")], "O2Sat"),
    ],
)
@pytest.mark.parametrize("blood_gas", [False, True])
def test_the_same_codings_map_the_same_in_fhir_and_hl7(
    codings: list[tuple[str, str]], in_a_blood_gas: str, blood_gas: bool
) -> None:
    """``2708-6^SpO2^LN^150456^MDC_PULS_OXIM_SAT_O2^MDC`` was SaO2 in HL7 and O2Sat in FHIR."""
    obx_3 = "^".join(f"{code}^{TEXT[code]}^{system}" for system, code in codings)
    hl7 = hl7_codes(oru(obx_3, BLOOD_GAS_ORDER if blood_gas else VITALS_ORDER))
    fhir_codings = [(FHIR_SYSTEM[system], code) for system, code in codings]
    fhir = fhir_event(saturation(fhir_codings, **({"category": category("laboratory")} if blood_gas else {})))
    assert hl7 == [fhir.code] == [in_a_blood_gas if blood_gas else "O2Sat"]
