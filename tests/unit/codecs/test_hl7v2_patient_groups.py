"""An ``ORU^R01`` carrying several patients (HL7 v2.5.1 7.3.1: the PATIENT_RESULT group
``{PID [PV1] {OBR {OBX}}}`` repeats, as a lab's batch sends it): every result is its own group's
patient's. The decoder gave every OBX to the message's first PID and PV1: patient B's lactate of 7.8
was accepted as patient A's."""

from __future__ import annotations

from datetime import UTC, datetime

from vigil.schemas.codecs.care_units import Units
from vigil.schemas.codecs.hl7v2 import decode_hl7v2

MSH = "MSH|^~\\&|LAB|HOSP|VIGIL|HOSP|20240315143000+0000||ORU^R01|L77|P|2.5.1"
NOW = datetime(2024, 3, 15, 15, tzinfo=UTC)


def patient(mrn: str | None, unit: str | None, visit: str, *values: str) -> list[str]:
    """One PATIENT_RESULT: PID (none when ``mrn`` is None; empty PID-3 when ''), PV1 in ``unit``, an
    order, one lactate OBX per value."""
    head = [] if mrn is None else [f"PID|1||{mrn}^^^HOSP^MR" if mrn else "PID|1||"]
    pv1 = [] if unit is None else [f"PV1|1|I|{unit}^1^A^HOSP" + "|" * 16 + visit]  # PV1-19: the visit
    obr = ["OBR|1|||LACT|||20240315142000+0000"]
    obx = [f"OBX|{n}|NM|2524-7^Lactate^LN||{v}|mmol/L|||||F" for n, v in enumerate(values, 1)]
    return head + pv1 + obr + obx


def oru(*groups: list[str]) -> bytes:
    return "\r".join([MSH, *(segment for group in groups for segment in group)]).encode()


def read(payload: bytes, units: Units = Units()) -> list[tuple[str, str | None, str | None, float]]:
    result = decode_hl7v2(payload, units=units).checked(NOW)
    return [(e.patient_id, e.ward, e.encounter, e.value) for e in result.events]


def test_each_patients_results_go_to_that_patient() -> None:
    payload = oru(patient("1111111", "ICU-3", "V1", "1.1"), patient("2222222", "ICU-5", "V2", "7.8"))
    assert read(payload) == [("1111111", "ICU-3", "V1", 1.1), ("2222222", "ICU-5", "V2", 7.8)]


def test_three_patients_each_with_their_own_visit_and_time() -> None:
    third = patient("3333333", None, "", "2.4", "2.6")  # no PV1: no ward, no visit (not the others')
    third[1] = "OBR|1|||LACT|||20240315141000+0000"
    payload = oru(patient("1111111", "ICU-3", "V1", "1.1"), patient("2222222", "ICU-5", "V2", "7.8"), third)
    assert read(payload) == [
        ("1111111", "ICU-3", "V1", 1.1),
        ("2222222", "ICU-5", "V2", 7.8),
        ("3333333", None, None, 2.4),
        ("3333333", None, None, 2.6),
    ]
    times = {e.patient_id: e.observed_at for e in decode_hl7v2(payload).events}
    assert times["3333333"] == datetime(2024, 3, 15, 14, 10, tzinfo=UTC)  # its own order's OBR-7
    assert times["2222222"] == datetime(2024, 3, 15, 14, 20, tzinfo=UTC)


def test_a_result_before_any_pid_is_nobodys_not_the_first_patients() -> None:
    payload = oru(patient(None, None, "", "9.9"), patient("1111111", "ICU-3", "V1", "1.1"))
    result = decode_hl7v2(payload)
    assert [(e.patient_id, e.value) for e in result.events] == [("1111111", 1.1)]
    (refused,) = result.rejected
    assert refused.reason == "missing_subject" and "OBX[1] before any PID" in refused.detail


def test_a_patient_group_without_an_identifier_is_refused_alone() -> None:
    payload = oru(
        patient("1111111", "ICU-3", "V1", "1.1"), patient("", "ICU-5", "V2", "7.8", "8.0"), patient("3", "ICU-3", "V3")
    )
    result = decode_hl7v2(payload)
    assert [(e.patient_id, e.value) for e in result.events] == [("1111111", 1.1)]
    (refused,) = result.rejected  # one for the group, its results never given to patient A
    assert refused.reason == "missing_subject" and "OBX[2] to OBX[3]" in refused.detail


def test_the_unit_is_checked_for_each_patient() -> None:
    """A lab batch with an ICU patient and a ward patient: the ward's result is ignored (counted), the
    ICU's scored; the first PV1 decided for both."""
    icu = Units.of(["ICU-3"])
    payload = oru(patient("1111111", "WARD4", "V1", "1.1", "1.2"), patient("2222222", "ICU-3", "V2", "7.8"))
    result = decode_hl7v2(payload, units=icu)
    assert [(e.patient_id, e.ward, e.value) for e in result.events] == [("2222222", "ICU-3", 7.8)]
    assert [r.reason for r in result.ignored] == ["unmonitored_unit"] and result.ignored_units == {"WARD4": 1}
    flipped = oru(patient("2222222", "ICU-3", "V2", "7.8"), patient("1111111", "WARD4", "V1", "1.1"))
    assert read(flipped, icu) == [("2222222", "ICU-3", "V2", 7.8)]


def test_one_patients_event_ids_do_not_change() -> None:
    """The OBX positions count through the message, as before: a replay of a one-patient message
    keeps its event ids (downstream writes dedupe on them)."""
    one = oru(patient("1111111", "ICU-3", "V1", "1.1", "1.3"))
    two = oru(patient("1111111", "ICU-3", "V1", "1.1", "1.3"), patient("2222222", "ICU-5", "V2", "7.8"))
    ids = [e.event_id for e in decode_hl7v2(one).events]
    assert [e.event_id for e in decode_hl7v2(two).events][:2] == ids and len(set(ids)) == 2
