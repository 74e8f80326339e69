"""Age and Gender from the feeds: HL7v2 PID-7/PID-8 and FHIR Patient.birthDate/gender.

The models were trained on PhysioNet rows that always carry Age (years, two decimals, 18.11 to 89.0
in set A) and Gender (1 male, 0 female); no codec sent either, so every tree saw a missing Age and
Gender in production that it never saw in training. A demographic is read beside the patient's
results only: alone it opens a stay that is scored (``models.stays``)."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.schemas.codecs.care_units import Units
from vigil.schemas.codecs.fhir import decode_fhir
from vigil.schemas.codecs.fhir_stream import decode_fhir_stream
from vigil.schemas.codecs.hl7v2 import decode_hl7v2
from vigil.schemas.codecs.loinc import DecodeResult
from vigil.schemas.codes import CATALOGUE

NOW = datetime(2024, 3, 15, 15, tzinfo=UTC)
MSH = "MSH|^~\\&|MON|ICU|VIGIL|HOSP|20240315143005+0000||ORU^R01^ORU_R01|CTRL-1|P|2.5.1"
OBR = "OBR|1|||VS|||20240315142000+0000"


def pid(birth: str = "19620307", sex: str = "M", mrn: str = "4420011") -> str:
    return f"PID|1||{mrn}^^^HOSP^MR||EVERYMAN^ADAM||{birth}|{sex}"


def hr_obx(value: str = "72", time: str = "20240315142500+0000", code: str = "8867-4^Heart rate^LN") -> str:
    return f"OBX|1|NM|{code}||{value}|/min^^UCUM|||||F|||{time}"


def oru(*segments: str, msh: str = MSH) -> bytes:
    return "\r".join([msh, *segments]).encode()


def demographics(result: DecodeResult) -> dict[str, float]:
    return {e.code: e.value for e in result.events if e.kind == "demographic"}


# --- HL7v2 --------------------------------------------------------------------------------------


def test_an_oru_gives_age_in_years_and_gender_at_its_first_result() -> None:
    payload = oru(pid(), OBR, hr_obx(time="20240315142500+0000"), hr_obx("75", time="20240315143000+0000"))
    result = decode_hl7v2(payload).checked(NOW)
    assert result.rejected == []
    age, gender = (e for e in result.events if e.kind == "demographic")
    # 1962-03-07 to 2024-03-15: 62 years and 8 days, in years with two decimals as PhysioNet's rows
    assert (age.code, age.value, age.unit) == ("Age", 62.02, "a")
    assert (gender.code, gender.value, gender.unit) == ("Gender", 1.0, "1")
    assert {age.observed_at, gender.observed_at} == {datetime(2024, 3, 15, 14, 25, tzinfo=UTC)}
    assert {age.patient_id, gender.patient_id} == {"4420011"}
    assert (age.ward, age.encounter, age.source) == (None, None, "hl7v2")


@pytest.mark.parametrize(
    ("birth", "age"),
    [
        ("19620307", 62.02),
        ("196203070815", 62.02),  # a time of birth
        ("19620307081512.5+0100", 62.02),
        ("19240315", 89.0),  # 100 years: as the training data's oldest, 89.0
        ("19350315", 89.0),
        ("19350601", 88.79),
        ("20060315", 18.0),
    ],
)
def test_pid7_forms_and_the_training_datas_oldest_age(birth: str, age: float) -> None:
    result = decode_hl7v2(oru(pid(birth=birth), OBR, hr_obx()))
    assert demographics(result)["Age"] == age


@pytest.mark.parametrize(("sex", "gender"), [("M", 1.0), ("F", 0.0), ("f", 0.0)])
def test_pid8_male_and_female(sex: str, gender: float) -> None:
    assert demographics(decode_hl7v2(oru(pid(sex=sex), OBR, hr_obx())))["Gender"] == gender


@pytest.mark.parametrize("sex", ["U", "O", "A", "N", "", "X"])
def test_other_sexes_give_no_gender_and_no_dead_letter(sex: str) -> None:
    result = decode_hl7v2(oru(pid(sex=sex), OBR, hr_obx()))
    assert set(demographics(result)) == {"Age"}
    assert result.rejected == []


@pytest.mark.parametrize(
    ("birth", "reason"),
    [
        ("1962", "no_value"),  # the year alone: the age could be a year off
        ("196203", "no_value"),
        ("19621307", "no_value"),  # month 13
        ("07/03/1962", "no_value"),
        ("yesterday", "no_value"),
        ("20240316", "out_of_range"),  # born after the result
        ("18900101", "out_of_range"),  # 134 years
    ],
)
def test_a_bad_pid7_is_a_dead_letter_and_the_rest_is_read(birth: str, reason: str) -> None:
    result = decode_hl7v2(oru(pid(birth=birth), OBR, hr_obx()))
    assert [e.code for e in result.events] == ["HR", "Gender"]
    (refused,) = result.rejected
    assert refused.reason == reason and "PID-7" in refused.detail and "PID[1]" in refused.detail
    assert birth not in refused.detail  # a date of birth is PHI: the field is named, never its value


def test_an_empty_or_null_pid7_is_no_age_and_no_dead_letter() -> None:
    for birth in ("", '""'):
        result = decode_hl7v2(oru(pid(birth=birth), OBR, hr_obx()))
        assert set(demographics(result)) == {"Gender"} and result.rejected == []


def test_the_age_is_counted_on_the_senders_local_date() -> None:
    """00:30 on 15 March in a +1000 zone is 14 March in UTC: the date of birth is the sender's date."""
    msh = MSH.replace("20240315143005+0000", "20240315003005+1000")
    result = decode_hl7v2(oru(pid(birth="19600103"), OBR, hr_obx(time="202403150030"), msh=msh))
    (hr,) = (e for e in result.events if e.code == "HR")
    assert hr.observed_at == datetime(2024, 3, 14, 14, 30, tzinfo=UTC)
    assert demographics(result)["Age"] == 64.2  # 64.19 on the UTC date


def test_each_patient_of_a_lab_batch_has_its_own_demographics_and_none_without_a_result() -> None:
    payload = oru(
        pid(birth="19620307", sex="M", mrn="1111111"),
        OBR,
        hr_obx(),
        pid(birth="19800101", sex="F", mrn="2222222"),
        OBR,
        hr_obx("70", time="20240315141000+0000"),
        pid(birth="19500101", sex="M", mrn="3333333"),  # only an unmapped result: nothing read of it
        OBR,
        hr_obx(code="39156-5^BMI^LN"),
    )
    result = decode_hl7v2(payload).checked(NOW)
    read = {(e.patient_id, e.code): (e.value, e.observed_at.minute) for e in result.events if e.kind == "demographic"}
    assert read == {
        ("1111111", "Age"): (62.02, 25),
        ("1111111", "Gender"): (1.0, 25),
        ("2222222", "Age"): (44.2, 10),
        ("2222222", "Gender"): (0.0, 10),
    }
    assert [r.reason for r in result.rejected] == ["unmapped_code"]


def test_a_message_sent_again_gives_the_same_event_ids() -> None:
    payload = oru(pid(), OBR, hr_obx())
    first, again = decode_hl7v2(payload), decode_hl7v2(payload)
    assert [e.event_id for e in first.events] == [e.event_id for e in again.events]
    assert len({e.event_id for e in first.events}) == 3


def test_adt_messages_give_no_demographics() -> None:
    """A hospital-wide ADT feed sends every patient's discharge: an Age alone would open a scored stay."""
    adt = "\r".join(
        [
            "MSH|^~\\&|ADT|HOSP|VIGIL|HOSP|20240316101502+0000||ADT^A03|A1|P|2.5.1",
            "EVN|A03|20240316101500+0000",
            pid(),
            "PV1|1|I|ICU-3^12^B",
        ]
    ).encode()
    result = decode_hl7v2(adt)
    assert [e.code for e in result.events] == ["discharge"]


PID7 = st.one_of(
    st.text(max_size=30),
    st.text(alphabet="0123456789+-.^~&\\ ", max_size=30),
    st.dates().map(lambda d: d.strftime("%Y%m%d")),
    st.from_regex(r"\A\d{8}(\d{4}(\d{2}(\.\d{1,4})?)?)?([+-]\d{4})?\Z"),
)


@settings(
    max_examples=int(os.environ.get("VIGIL_PROPERTY_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(PID7, st.sampled_from(["M", "F", "U", "", "?"]))
def test_any_pid7_never_crashes_and_every_part_is_accounted(birth: str, sex: str) -> None:
    field = birth.replace("|", "").replace("\r", "").replace("\n", "")  # one field of the PID
    result = decode_hl7v2(oru(pid(birth=field), OBR, hr_obx())).checked(NOW)
    assert "internal" not in [r.reason for r in result.rejected]
    assert [e.code for e in result.events][0] == "HR"  # the result is read whatever PID-7 holds
    for event in result.events:
        low, high = CATALOGUE[event.code][2]
        assert low <= event.value <= high
    age = [e.value for e in result.events if e.code == "Age"]
    assert all(value <= 89.0 for value in age)
    refused = [r for r in result.rejected if "PID-7" in r.detail]
    assert len(age) + len(refused) <= 1
    if len(field.strip()) >= 8 and field.strip().isdigit():  # a date: details name PID-7, never what it holds
        assert all(field.strip() not in r.detail for r in refused)


# --- FHIR ---------------------------------------------------------------------------------------


def observation(when: str, subject: str = "Patient/p1", loinc: str = "8867-4", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": subject},
        "effectiveDateTime": when,
        "valueQuantity": {"value": 80, "system": "http://unitsofmeasure.org", "code": "/min"},
        **extra,
    }


def patient(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": "p1", "birthDate": "1962-03-07", "gender": "male", **fields}


def bundle(*resources: dict[str, Any], **fields: Any) -> bytes:
    entries = [
        {"fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}", "resource": r} for i, r in enumerate(resources)
    ]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries, **fields}).encode()


def streamed(payload: bytes, units: Units = Units()) -> DecodeResult:
    whole = DecodeResult()
    for outcome in decode_fhir_stream(io.BytesIO(payload), units=units):
        whole.extend(outcome.result)
    return whole


def test_a_patient_in_a_bundle_gives_age_at_its_earliest_result_and_gender() -> None:
    payload = bundle(
        patient(),
        observation("2024-03-15T14:25:00+00:00"),
        observation("2024-03-15T09:10:00+01:00"),
        timestamp="2024-03-16T10:00:00Z",
    )
    for result in (decode_fhir(payload), streamed(payload)):
        checked = result.checked(NOW)
        assert checked.rejected == [] and checked.ignored == []
        age, gender = (e for e in checked.events if e.kind == "demographic")
        assert (age.code, age.value, gender.code, gender.value) == ("Age", 62.02, "Gender", 1.0)
        assert {age.observed_at, gender.observed_at} == {datetime(2024, 3, 15, 8, 10, tzinfo=UTC)}
        assert {age.patient_id, gender.patient_id} == {"p1"}


def test_the_patient_id_is_the_one_its_results_resolve_to() -> None:
    """A transaction's Patient without an id: its results name it by urn:uuid, and get its MRN."""
    payload = bundle(
        {"resourceType": "Patient", "identifier": [{"value": "MRN-881"}], "gender": "female"},
        observation("2024-03-15T14:25:00Z", subject="urn:uuid:00000000-0000-4000-8000-000000000000"),
    )
    for result in (decode_fhir(payload), streamed(payload)):
        assert {(e.code, e.patient_id) for e in result.events} == {("HR", "MRN-881"), ("Gender", "MRN-881")}


def test_the_stream_reads_a_patient_sent_before_its_results() -> None:
    payload = bundle(patient(), *(observation(f"2024-03-15T1{h}:00:00Z") for h in range(3)))
    assert demographics(streamed(payload)) == demographics(decode_fhir(payload)) == {"Age": 62.02, "Gender": 1.0}


@pytest.mark.parametrize(
    "payload",
    [
        json.dumps(patient(meta={"lastUpdated": "2024-03-15T14:00:00Z"})).encode(),  # alone
        bundle(patient(), timestamp="2024-03-15T14:00:00Z"),  # without a result
        bundle(patient(), observation("2024-03-15T14:25:00Z", subject="Patient/other")),  # another's
        bundle(patient(), observation("2024-03-15T14:25:00Z", loinc="39156-5")),  # a BMI: not read
    ],
)
def test_a_patient_without_its_results_is_context_ignored(payload: bytes) -> None:
    for result in (decode_fhir(payload), streamed(payload)):
        assert demographics(result) == {}
        patients = [i for i in result.ignored if "Patient" in i.detail]
        assert [i.reason for i in patients] == ["context_resource"]
        assert "no result" in patients[0].detail


def test_a_patient_with_neither_element_is_context_as_before() -> None:
    result = decode_fhir(bundle({"resourceType": "Patient", "id": "p1"}, observation("2024-03-15T14:25:00Z")))
    assert demographics(result) == {} and [i.reason for i in result.ignored] == ["context_resource"]


@pytest.mark.parametrize(
    ("birth_date", "reason"),
    [("1962", "no_value"), ("1962-03", "no_value"), ("1962-02-30", "no_value"), (19620307, "no_value"),
     ("2025-01-01", "out_of_range"), ("1890-01-01", "out_of_range")],
)  # fmt: skip
def test_a_bad_birth_date_is_a_dead_letter_and_gender_is_still_read(birth_date: Any, reason: str) -> None:
    result = decode_fhir(bundle(patient(birthDate=birth_date), observation("2024-03-15T14:25:00Z")))
    assert demographics(result) == {"Gender": 1.0}
    (refused,) = result.rejected
    assert refused.reason == reason and "birthDate" in refused.detail and str(birth_date) not in refused.detail


@pytest.mark.parametrize(("sex", "read"), [("female", {"Gender": 0.0}), ("other", {}), ("unknown", {}), (1, {})])
def test_fhir_gender(sex: Any, read: dict[str, float]) -> None:
    result = decode_fhir(bundle(patient(gender=sex, birthDate=None), observation("2024-03-15T14:25:00Z")))
    assert demographics(result) == read and result.rejected == []
    assert result.accounted == 2  # the result, and the Patient: its gender, or ignored


def test_results_from_a_ward_the_site_does_not_score_read_no_demographics() -> None:
    ward = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "in-progress",
        "class": {"code": "IMP"},
        "subject": {"reference": "Patient/p1"},
        "location": [{"location": {"display": "WARD4"}, "status": "active"}],
    }
    result = observation("2024-03-15T14:25:00Z", encounter={"reference": "Encounter/e1"})
    payload = bundle(patient(), ward, result)
    icu = Units.of(["ICU-3"])
    for decoded in (decode_fhir(payload, icu), streamed(payload, icu)):
        assert decoded.events == [] and demographics(decoded) == {}


def test_a_bundle_sent_again_gives_the_same_ids() -> None:
    payload = bundle(patient(meta={"versionId": "3"}), observation("2024-03-15T14:25:00Z"))
    first, again = decode_fhir(payload), streamed(payload)
    assert sorted(e.event_id for e in first.events) == sorted(e.event_id for e in again.events)
    assert len({e.event_id for e in first.events}) == 3


def test_age_offsets_are_read_on_the_results_own_date() -> None:
    when = datetime(2024, 3, 15, 0, 30, tzinfo=timezone(timedelta(hours=10)))
    result = decode_fhir(bundle(patient(birthDate="1960-01-03"), observation(when.isoformat())))
    assert demographics(result)["Age"] == 64.2


# --- beside a measurement only (review of d6c3273) -------------------------------------------------
#
# Hour 0 of a window without rows is fixed by its first measurement, or by a demographic before it
# (a replayed stay sends Age at its hour 0: ``models.window``). An Age read beside an ED assessment,
# a weight or a treatment alone fixed hour 0 at the ED's time and put the ICU's first vital signs
# hours later; an Age beside results all refused by the intake rules opened a stay alone.


def hl7(control: str, time: str, *obx: str) -> bytes:
    msh = MSH.replace("20240315143005+0000", f"{time}+0000").replace("CTRL-1", control)
    return oru(pid(), f"OBR|1|||VS|||{time}+0000", *obx, msh=msh)


ED_ONLY_OBX = {
    "GCS": "OBX|1|NM|9269-2^GCS^LN||14|{score}|||||F|||20240315071000+0000",
    "ACVPU": "OBX|1|ST|AVPU^AVPU^L||V||||||F|||20240315071000+0000",
    "SupplementalO2": "OBX|1|ST|SUPP_O2^On oxygen^L||Y||||||F|||20240315071000+0000",
    "weight_kg": "OBX|1|NM|29463-7^Body weight^LN||80|kg|||||F|||20240315071000+0000",
    "oxygen": "OBX|1|NM|3151-8^O2 flow^LN||4|L/min|||||F|||20240315071000+0000",
}


@pytest.mark.parametrize("code", sorted(ED_ONLY_OBX))
def test_an_ed_message_without_a_measurement_gives_no_demographics_the_vitals_bring_them(code: str) -> None:
    ed = decode_hl7v2(hl7("ED1", "20240315071000", ED_ONLY_OBX[code])).checked(NOW)
    assert [e.code for e in ed.events] == [code] and ed.rejected == []
    icu = decode_hl7v2(hl7("ICU1", "20240315103000", hr_obx("120", time="20240315103000+0000"))).checked(NOW)
    assert [e.code for e in icu.events] == ["HR", "Age", "Gender"]
    assert {e.observed_at for e in icu.events} == {datetime(2024, 3, 15, 10, 30, tzinfo=UTC)}


@pytest.mark.parametrize("code", ["GCS", "weight_kg"])
def test_the_icus_first_vital_signs_are_hour_0_after_an_ed_message(code: str) -> None:
    """The end to end of the review's case: whichever order the messages arrive in."""
    from vigil.models.window import PatientWindow

    ed = hl7("ED1", "20240315071000", ED_ONLY_OBX[code])
    icu = hl7("ICU1", "20240315103000", hr_obx("120", time="20240315103000+0000"))
    for messages in ([ed, icu], [icu, ed]):
        window = PatientWindow()
        for message in messages:
            for event in decode_hl7v2(message).checked(NOW).events:
                window.apply(event)
        assert window.anchor_s == int(datetime(2024, 3, 15, 10, tzinfo=UTC).timestamp())
        assert sorted(window.rows) == [0]


def test_in_one_message_the_demographics_take_the_measurements_time_not_the_assessments() -> None:
    payload = oru(pid(), OBR, ED_ONLY_OBX["GCS"], hr_obx(time="20240315142500+0000"))
    result = decode_hl7v2(payload).checked(NOW)
    read = {e.code: e.observed_at for e in result.events}
    assert read["GCS"] == datetime(2024, 3, 15, 7, 10, tzinfo=UTC)
    assert read["Age"] == read["Gender"] == read["HR"] == datetime(2024, 3, 15, 14, 25, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "unit", "reason"),
    [("900", "/min^^UCUM", "out_of_range"), ("80", "kg^^UCUM", "unit"), ("", "/min^^UCUM", "no_value")],
)
def test_an_oru_whose_every_measurement_is_refused_gives_no_demographics(value: str, unit: str, reason: str) -> None:
    obx = f"OBX|1|NM|8867-4^Heart rate^LN||{value}|{unit}|||||F|||20240315142500+0000"
    result = decode_hl7v2(oru(pid(birth="20240316"), OBR, obx)).checked(NOW)  # a bad PID-7 is not read either
    assert result.events == []
    assert [r.reason for r in result.rejected] == [reason]


def test_the_demographics_take_the_earliest_measurement_published() -> None:
    payload = oru(pid(), OBR, hr_obx("900", time="20240315141000+0000"), hr_obx(time="20240315142500+0000"))
    result = decode_hl7v2(payload).checked(NOW)
    assert [e.code for e in result.events] == ["HR", "Age", "Gender"]
    assert {e.observed_at for e in result.events} == {datetime(2024, 3, 15, 14, 25, tzinfo=UTC)}


def gcs_observation(when: str) -> dict[str, Any]:
    return observation(when, loinc="9269-2", valueQuantity={"value": 14})


def hr_of(value: Any, code: str = "/min") -> dict[str, Any]:
    return {"valueQuantity": {"value": value, "system": "http://unitsofmeasure.org", "code": code}}


@pytest.mark.parametrize(
    ("refused", "reason"),
    [
        (observation("2024-03-15T14:25:00Z", **hr_of(900)), "out_of_range"),
        (observation("2024-03-15T14:25:00Z", **hr_of(80, "kg")), "unit"),
        ({k: v for k, v in observation("2024-03-15T14:25:00Z").items() if k != "valueQuantity"}, "no_value"),
        (gcs_observation("2024-03-15T14:25:00Z"), None),  # an assessment alone: read, no demographics
    ],
)
def test_a_patient_whose_results_are_all_refused_or_assessments_is_context(
    refused: dict[str, Any], reason: str | None
) -> None:
    for index in (0, 1):  # the Patient before or after its result
        resources = [patient(), refused] if index == 0 else [refused, patient()]
        payload = bundle(*resources)
        for result in (decode_fhir(payload).checked(NOW), streamed(payload).checked(NOW)):
            assert demographics(result) == {}
            assert [r.reason for r in result.rejected] == ([reason] if reason else [])
            assert [e.code for e in result.events] == ([] if reason else ["GCS"])
            (context,) = result.ignored  # accounted: the Patient is ignored, as one without a result
            assert context.reason == "context_resource" and "no result" in context.detail


def test_fhir_an_ed_bundle_then_a_vitals_bundle_whole_and_streamed_alike() -> None:
    ed = bundle(patient(), gcs_observation("2024-03-15T07:10:00Z"))
    icu = bundle(patient(), observation("2024-03-15T10:30:00Z"))
    both = bundle(patient(), gcs_observation("2024-03-15T07:10:00Z"), observation("2024-03-15T10:30:00Z"))
    for decode in (decode_fhir, streamed):
        assert demographics(decode(ed)) == {}
        for payload in (icu, both):
            read = {e.code: e.observed_at for e in decode(payload).checked(NOW).events if e.kind == "demographic"}
            assert read == {"Age": datetime(2024, 3, 15, 10, 30, tzinfo=UTC), "Gender": read["Age"]}


def test_fhir_the_earliest_measurement_published_whole_and_streamed_alike() -> None:
    payload = bundle(
        observation("2024-03-15T07:30:00Z", **hr_of(900)),  # refused: no time for the age
        patient(),
        observation("2024-03-15T09:00:00+01:00"),
        observation("2024-03-15T09:30:00Z"),
    )
    whole, stream = decode_fhir(payload).checked(NOW), streamed(payload).checked(NOW)
    assert sorted(e.event_id for e in whole.events) == sorted(e.event_id for e in stream.events)
    for result in (whole, stream):
        read = {e.code: e.observed_at for e in result.events if e.kind == "demographic"}
        assert read == {"Age": datetime(2024, 3, 15, 8, tzinfo=UTC), "Gender": datetime(2024, 3, 15, 8, tzinfo=UTC)}


def test_fhir_demographics_are_placed_as_the_measurement_they_are_read_beside() -> None:
    """An Observation sent without its Encounter is placed by the units kept from an earlier payload
    (``DecodeResult.placed``): from a ward the site does not score, its Age must not be scored alone."""
    from vigil.schemas.codecs.fhir_places import Place

    payload = bundle(patient(), observation("2024-03-15T14:25:00Z", encounter={"reference": "Encounter/e9"}))
    kept = {("p1", "e9"): (Place("WARD4", "active"),)}
    for result in (decode_fhir(payload), streamed(payload)):
        assert {(e.code, e.encounter) for e in result.events} == {("HR", "e9"), ("Age", "e9"), ("Gender", "e9")}
        placed = result.placed(kept, Units.of(["ICU-3"]))
        assert placed.events == [] and [i.reason for i in placed.ignored] == ["unmonitored_unit"] * 3


def test_the_demographics_ids_stay_those_first_published() -> None:
    """A message or Bundle decoded again by another release must give the same event ids (a score's
    id hashes them: consumers dedupe on it); a refactor once reordered FHIR's part."""
    hl7 = decode_hl7v2(oru(pid(), OBR, hr_obx())).checked(NOW)
    fhir = decode_fhir(bundle(patient(), observation("2024-03-15T14:25:00+00:00"))).checked(NOW)
    ids = {(e.source, e.code): e.event_id for e in (*hl7.events, *fhir.events) if e.kind == "demographic"}
    assert ids == {
        ("hl7v2", "Age"): "3decc2fb34528543c864bca666584279",
        ("hl7v2", "Gender"): "ebdf046cd245a81c88e640f237e4d540",
        ("fhir", "Age"): "df20492849954d72adacc1706dc93aea",
        ("fhir", "Gender"): "e309c2b05d3883106e1c12526efedc0c",
    }
