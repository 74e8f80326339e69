"""Values each intake (Vigil JSON, FHIR R4, HL7v2) must refuse or convert alike: the cases a review
found read wrongly (calcium in mEq/L doubled, ``true`` read as ACVPU "confusion", a GCS of 14.5) or
raising out of the decoder (a time past datetime's range once converted to UTC)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from vigil.schemas.codecs.fhir import decode_fhir
from vigil.schemas.codecs.hl7v2 import decode_hl7v2
from vigil.schemas.deadletter import Rejected
from vigil.schemas.normalize import decode_raw_event
from vigil.schemas.units import UnitError, to_canonical

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)


def vigil_json(**fields: Any) -> bytes:
    event = {"patient_id": "p1", "observed_at": "2024-06-01T11:00:00Z", "kind": "vital", "code": "HR", "value": 80}
    return json.dumps({"unit": "/min", **event, **fields}).encode()


def observation(code: str, system: str = "http://loinc.org", **value: Any) -> bytes:
    return json.dumps(
        {
            "resourceType": "Observation",
            "id": "o1",
            "status": "final",
            "code": {"coding": [{"system": system, "code": code}]},
            "subject": {"reference": "Patient/p1"},
            "effectiveDateTime": value.pop("at", "2024-06-01T11:00:00Z"),
            **value,
        }
    ).encode()


def oru(*obx: str) -> bytes:
    head = "MSH|^~\\&|MON|ICU|VIGIL|H|20240601110000||ORU^R01|C1|P|2.5.1\rPID|1||12345^^^H^MR\rPV1|1|I|ICU^1^1"
    return "\r".join((head, *obx)).encode()


def accepted(result: Any) -> list[tuple[str, float]]:
    checked = result.checked(NOW)
    return [(e.code, round(e.value, 3)) for e in checked.events]


@pytest.mark.parametrize(
    ("code", "value", "unit", "expected"),
    [
        ("Calcium", 5.0, "mEq/L", 10.02),  # 2.5 mmol/L: two charges per ion
        ("Magnesium", 2.0, "meq/L", 2.431),  # 1 mmol/L
        ("Calcium", 2.5, "mmol/L", 10.02),
        ("Potassium", 4.2, "mEq/L", 4.2),  # one charge: mEq = mmol
        ("Chloride", 101.0, "meq/l", 101.0),
        ("HCO3", 24.0, "mEq/L", 24.0),
    ],
)
def test_milliequivalents_count_the_ions_charge(code: str, value: float, unit: str, expected: float) -> None:
    assert to_canonical(code, value, unit) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("code", ["Glucose", "BUN", "Phosphate", "Creatinine"])
def test_milliequivalents_of_what_has_no_single_charge_are_refused(code: str) -> None:
    with pytest.raises(UnitError, match="charge"):
        to_canonical(code, 5.0, "mEq/L")


def test_calcium_in_meq_reads_the_same_from_every_intake() -> None:
    event = decode_raw_event(vigil_json(kind="lab", code="Calcium", value=5, unit="mEq/L"), NOW)
    assert not isinstance(event, Rejected) and event.value == pytest.approx(10.02, rel=1e-3)
    fhir = observation("17861-6", valueQuantity={"value": 5, "system": "http://unitsofmeasure.org", "code": "meq/L"})
    assert accepted(decode_fhir(fhir)) == [("Calcium", 10.02)]
    assert accepted(decode_hl7v2(oru("OBX|1|NM|17861-6^Ca^LN||5|mEq/L|||||F|||20240601110000"))) == [("Calcium", 10.02)]


@pytest.mark.parametrize(
    ("code", "value"), [("GCS", 14.5), ("ACVPU", 2.5), ("SupplementalO2", 0.5), ("HypercapnicRespFailure", 0.2)]
)
def test_scales_and_flags_take_whole_values_only(code: str, value: float) -> None:
    rejected = decode_raw_event(vigil_json(kind="assessment", code=code, value=value, unit=""), NOW)
    assert isinstance(rejected, Rejected), rejected
    assert rejected.reason == "out_of_range" and "whole values" in rejected.detail
    whole = decode_raw_event(vigil_json(kind="assessment", code=code, value=round(value) or 1, unit=""), NOW)
    assert not isinstance(whole, Rejected), whole


def test_a_gcs_of_14_5_is_refused_from_fhir_and_hl7v2_too() -> None:
    fhir = decode_fhir(observation("9269-2", valueQuantity={"value": 14.5})).checked(NOW)
    assert not fhir.events and [r.reason for r in fhir.rejected] == ["out_of_range"]
    hl7 = decode_hl7v2(oru("OBX|1|NM|9269-2^GCS^LN||14.5||||||F|||20240601110000")).checked(NOW)
    assert not hl7.events and [r.reason for r in hl7.rejected] == ["out_of_range"]


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ({"valueInteger": True}, "valueInteger is a JSON boolean"),
        ({"valueInteger": "3"}, "valueInteger is a JSON string"),
        ({"valueQuantity": {"value": "80", "code": "/min"}}, "valueQuantity.value is a JSON string"),
    ],
)
def test_fhir_values_must_be_json_numbers(value: dict[str, Any], said: str) -> None:
    # fhir.resources reads "80" and true as numbers; Vigil JSON does not, and neither does its FHIR
    code = ("ACVPU", "urn:vigil:code") if "valueInteger" in value else ("8867-4", "http://loinc.org")
    result = decode_fhir(observation(code[0], code[1], **value))
    assert not result.events and [r.reason for r in result.rejected] == ["schema"]
    assert said in result.rejected[0].detail


def test_a_component_value_must_be_a_json_number_too() -> None:
    bp = [
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
            "valueQuantity": {"value": "120", "code": "mm[Hg]"},
        },
        {
            "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
            "valueQuantity": {"value": 70, "code": "mm[Hg]"},
        },
    ]
    result = decode_fhir(observation("85354-9", component=bp)).checked(NOW)
    assert [(e.code, e.value) for e in result.events] == [("DBP", 70.0)]
    assert [r.reason for r in result.rejected] == ["schema"] and "component[0]" in result.rejected[0].detail


@pytest.mark.parametrize("at", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_a_time_past_the_calendar_in_utc_is_refused_not_raised(at: str) -> None:
    rejected = decode_raw_event(vigil_json(observed_at=at), NOW)
    assert isinstance(rejected, Rejected) and "out of range in UTC" in rejected.detail
    fhir = decode_fhir(observation("8867-4", at=at, valueQuantity={"value": 80, "code": "/min"}))
    assert [r.reason for r in fhir.rejected] == ["missing_time"]
    # one bad OBX-14 refuses that result only, not the message's others
    stamp = at[:19].replace("-", "").replace(":", "").replace("T", "") + at[19:].replace(":", "")
    hl7 = decode_hl7v2(
        oru(
            f"OBX|1|NM|8867-4^HR^LN||80|/min|||||F|||{stamp}",
            "OBX|2|NM|9279-1^RR^LN||18|/min|||||F|||20240601110000",
        )
    )
    assert accepted(hl7) == [("Resp", 18.0)] and [r.reason for r in hl7.rejected] == ["missing_time"]
