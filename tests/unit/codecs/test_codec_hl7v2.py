"""HL7v2 ORU^R01 decoder: realistic messages, framing, status/time/patient rules, local codes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from vigil.schemas.codecs.care_units import Units
from vigil.schemas.codecs.hl7v2 import decode_hl7v2

FIXTURES = Path(__file__).parent / "fixtures" / "hl7v2"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def as_cr(text: str) -> bytes:
    """A message the way it travels: segments separated by carriage returns."""
    return "\r".join(line.strip() for line in text.strip().splitlines()).encode()


MSH = "MSH|^~\\&|MON|ICU|VIGIL|HOSP|20240315143005+0000||ORU^R01^ORU_R01|CTRL-1|P|2.5.1"
PID = "PID|1||4420011^^^HOSP^MR"


def message(*obx: str, msh: str = MSH, pid: str = PID, obr: str = "OBR|1|||VS|||20240315142000+0000") -> bytes:
    return as_cr("\n".join([msh, pid, obr, *obx]))


def hr_obx(value: str = "72", status: str = "F", time: str = "20240315142500+0000", units: str = "/min^^UCUM") -> str:
    return f"OBX|1|NM|8867-4^Heart rate^LN||{value}|{units}|||||{status}|||{time}"


# --- realistic messages -------------------------------------------------------------------------


def checked(payload: bytes):
    """Decoded, then through the intake rules (canonical unit, range, clock) as the interop agent does."""
    return decode_hl7v2(payload).checked(datetime.now(UTC))


def test_vitals_message_maps_loinc_codes_with_ucum_units() -> None:
    result = checked(fixture("oru_r01_vitals.hl7"))
    by_code = {e.code: e for e in result.events}
    assert set(by_code) == {"HR", "Resp", "O2Sat", "Temp", "SBP", "DBP", "MAP", "GCS", "Age", "Gender"}
    # PID-7 19620307, PID-8 M: 62 years and 8 days at the first result, 2024-03-15
    assert (by_code["Age"].value, by_code["Gender"].value) == (62.02, 1.0)
    assert by_code["Temp"].value == pytest.approx((101.3 - 32) * 5 / 9)  # [degF] -> Cel
    assert by_code["Temp"].unit == "Cel"
    hr = by_code["HR"]
    assert (hr.patient_id, hr.ward, hr.encounter, hr.source, hr.kind) == (
        "4420011",
        "ICU-3",
        "V77120044",
        "hl7v2",
        "vital",
    )
    assert hr.observed_at == datetime(2024, 3, 15, 14, 25, tzinfo=UTC)
    assert [r.reason for r in result.rejected] == ["unmapped_code"]  # BMI
    assert result.unknown_codes == {"LN|39156-5": 1}


def test_lab_message_converts_units_falls_back_to_obr7_and_drops_non_final_results() -> None:
    result = checked(fixture("oru_r01_labs.hl7"))
    by_code = {e.code: e for e in result.events}
    assert by_code["Lactate"].value == pytest.approx(36 / 9.008)  # mg/dL -> mmol/L
    assert by_code["PaCO2"].value == pytest.approx(4.1 * 7.50062)  # kPa -> mmHg
    assert by_code["Creatinine"].value == pytest.approx(168 / 88.42)  # umol/L -> mg/dL
    assert by_code["Bilirubin_total"].value == pytest.approx(41 / 17.1)
    assert (by_code["WBC"].value, by_code["Platelets"].value) == (18.2, 96.0)
    # no OBX-14: OBR-7 202403151540 without offset takes MSH-7's +0100
    assert by_code["Lactate"].observed_at == datetime(2024, 3, 15, 14, 40, tzinfo=UTC)
    assert sorted(r.reason for r in result.rejected) == ["not_final", "retracted"]  # OBX-11 X, and D (deleted)
    assert "Potassium" not in by_code


def test_ihe_pcd01_device_message_maps_mdc_codes_and_units() -> None:
    result = decode_hl7v2(fixture("oru_r01_pcd01_mdc.hl7"))
    values = {e.code: (e.value, e.unit) for e in result.events}
    assert values == {
        "Gender": (0.0, "1"),  # PID-8 F; no PID-7: no Age
        "HR": (96.0, "/min"),
        "O2Sat": (93.0, "%"),
        "Resp": (22.0, "/min"),
        "SBP": (104.0, "mm[Hg]"),
        "DBP": (61.0, "mm[Hg]"),
        "MAP": (75.0, "mm[Hg]"),
    }
    assert {e.observed_at for e in result.events if e.code == "HR"} == {datetime(2024, 3, 15, 13, 30, tzinfo=UTC)}
    assert [r.reason for r in result.rejected] == ["not_final"]  # the MDS device row, status X


def test_local_codes_acvpu_and_supplemental_oxygen() -> None:
    result = decode_hl7v2(fixture("oru_r01_local_codes.hl7"))
    values = {e.code: e.value for e in result.events}
    assert values == {
        "Resp": 19.0,
        "O2Sat": 96.0,
        "ACVPU": 2.0,
        "SupplementalO2": 1.0,
        "oxygen": 2.0,
        "Temp": 37.9,
    }
    assert result.unknown_codes == {"L|NEWS2": 1}
    # MSH-7 has no offset either: the default time zone (UTC) applies
    assert {e.observed_at for e in result.events} == {datetime(2024, 3, 15, 8, 55, tzinfo=UTC)}


# --- framing and separators -----------------------------------------------------------------------


@pytest.mark.parametrize("separator", [b"\r", b"\n", b"\r\n"])
def test_segment_separators(separator: bytes) -> None:
    payload = separator.join(fixture("oru_r01_vitals.hl7").splitlines())
    assert len(decode_hl7v2(payload).events) == 10  # 8 results, Age and Gender


def test_mllp_framing_is_stripped_and_frames_may_be_concatenated() -> None:
    first = message(hr_obx("72"))
    second = message(hr_obx("75"), msh=MSH.replace("CTRL-1", "CTRL-2"))
    framed = b"\x0b" + first + b"\x1c\x0d" + b"\x0b" + second + b"\x1c\x0d"
    result = decode_hl7v2(framed)
    assert [e.value for e in result.events] == [72.0, 75.0]
    assert result.rejected == []


def test_batch_envelope_is_skipped() -> None:
    batch = b"FHS|^~\\&|LAB\rBHS|^~\\&|LAB\r" + message(hr_obx()) + b"\rBTS|1\rFTS|1"
    result = decode_hl7v2(batch)
    assert len(result.events) == 1 and result.rejected == []


def test_latin1_payload_decodes() -> None:
    payload = message(hr_obx()).replace(b"HOSP^MR", "HÔP^MR".encode("latin-1"))
    assert len(decode_hl7v2(payload).events) == 1


# --- rules ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["F", "C", "P", "R", ""])
def test_accepted_result_statuses(status: str) -> None:
    assert len(decode_hl7v2(message(hr_obx(status=status))).events) == 1


@pytest.mark.parametrize("status", ["X", "I", "N", "O", "S", "U"])
def test_other_result_statuses_are_not_final(status: str) -> None:
    result = decode_hl7v2(message(hr_obx(status=status)))
    assert result.events == [] and [r.reason for r in result.rejected] == ["not_final"]


@pytest.mark.parametrize(("status", "meaning"), [("W", "wrong"), ("D", "deleted"), ("w", "wrong")])
def test_wrong_and_deleted_results_are_retractions_not_results_not_yet_final(status: str, meaning: str) -> None:
    """OBX-11 W (wrong: the result was for another patient) and D (deleted) withdraw a result sent
    before: dead-lettered ``retracted``, so an operator sees it, not hidden among ``not_final``."""
    result = decode_hl7v2(message(hr_obx(status=status)))
    assert result.events == [] and [r.reason for r in result.rejected] == ["retracted"]
    assert meaning in result.rejected[0].detail


def test_time_zone_rules() -> None:
    # OBX-14 with an offset wins
    with_offset = decode_hl7v2(message(hr_obx(time="202403151425-0500"))).events[0]
    assert with_offset.observed_at == datetime(2024, 3, 15, 19, 25, tzinfo=UTC)
    # no offset: the sender's offset from MSH-7
    sender = MSH.replace("20240315143005+0000", "20240315143005+0200")
    from_msh = decode_hl7v2(message(hr_obx(time="202403151425"), msh=sender)).events[0]
    assert from_msh.observed_at == datetime(2024, 3, 15, 12, 25, tzinfo=UTC)
    # neither: the configured default (UTC unless the caller says otherwise)
    bare = MSH.replace("20240315143005+0000", "20240315143005")
    default = decode_hl7v2(message(hr_obx(time="202403151425"), msh=bare)).events[0]
    assert default.observed_at == datetime(2024, 3, 15, 14, 25, tzinfo=UTC)
    eastern = decode_hl7v2(message(hr_obx(time="202403151425"), msh=bare), default_tz=timezone(timedelta(hours=-4)))
    assert eastern.events[0].observed_at == datetime(2024, 3, 15, 18, 25, tzinfo=UTC)
    # seconds and fractions
    precise = decode_hl7v2(message(hr_obx(time="20240315142501.25+0000"))).events[0]
    assert precise.observed_at == datetime(2024, 3, 15, 14, 25, 1, 250000, tzinfo=UTC)


@pytest.mark.parametrize("time", ["20240315", "2024031514", "not-a-time", "20241315142500+0000", "202403151425+9900"])
def test_imprecise_or_invalid_times_are_missing_time(time: str) -> None:
    result = decode_hl7v2(message(hr_obx(time=time), obr="OBR|1"))
    assert [r.reason for r in result.rejected] == ["missing_time"]


def test_no_time_anywhere_is_missing_time() -> None:
    result = decode_hl7v2(message(hr_obx(time=""), obr="OBR|1"))
    assert [r.reason for r in result.rejected] == ["missing_time"]


def test_obr7_is_the_fallback_time() -> None:
    event = decode_hl7v2(message(hr_obx(time=""))).events[0]
    assert event.observed_at == datetime(2024, 3, 15, 14, 20, tzinfo=UTC)


def test_pid3_prefers_the_medical_record_number() -> None:
    pid = "PID|1||999-45-1234^^^SSA^SS~MRN-77^^^HOSP^MR"
    assert decode_hl7v2(message(hr_obx(), pid=pid)).events[0].patient_id == "MRN-77"
    assert decode_hl7v2(message(hr_obx(), pid="PID|1||A1^^^HOSP")).events[0].patient_id == "A1"


@pytest.mark.parametrize("pid", ["PID|1||", "PID|1"])
def test_missing_patient_identifier(pid: str) -> None:
    result = decode_hl7v2(message(hr_obx(), pid=pid))
    assert result.events == [] and [r.reason for r in result.rejected] == ["missing_subject"]


def test_no_pid_segment_is_missing_subject() -> None:
    result = decode_hl7v2(as_cr(f"{MSH}\nOBX|1|NM|8867-4^HR^LN||72|/min|||||F|||20240315142500+0000"))
    assert [r.reason for r in result.rejected] == ["missing_subject"]


def test_other_message_types_are_unsupported() -> None:
    order = as_cr(MSH.replace("ORU^R01^ORU_R01", "ORM^O01^ORM_O01") + "\n" + PID)
    assert [r.reason for r in decode_hl7v2(order).rejected] == ["unsupported_message"]


# --- ADT: the discharge ends the stay (models.stays) --------------------------------------------

ADT_A03 = """
MSH|^~\\&|EPIC|GOODHEALTH|VIGIL|HOSP|20240316101502-0500||ADT^A03^ADT_A03|ADT-88|P|2.5.1
EVN|A03|20240316101500-0500|||nurse^J|20240316100000-0500
PID|1||4420011^^^HOSP^MR~99^^^HOSP^PI||DOE^JANE
PV1|1|I|MICU^12^A^HOSP||||||||||||||||VN-5521|||||||||||||||||01|||||||||20240316095500-0500
"""


def test_a_discharge_message_is_one_discharge_event() -> None:
    result = decode_hl7v2(as_cr(ADT_A03))
    assert result.rejected == [] and result.ignored == []
    (event,) = result.events
    assert (event.kind, event.code, event.value, event.patient_id) == ("encounter", "discharge", 1.0, "4420011")
    assert event.encounter == "VN-5521" and event.ward == "MICU" and event.source == "hl7v2"
    # PV1-45, the discharge time, first: 09:55 at -05:00
    assert event.observed_at == datetime(2024, 3, 16, 14, 55, tzinfo=UTC)
    assert decode_hl7v2(as_cr(ADT_A03)).events[0].event_id == event.event_id  # the same message, the same id


def test_a_discharge_without_pv1_45_takes_the_event_time_then_the_recorded_time() -> None:
    no_pv1_45 = ADT_A03.replace("|20240316095500-0500", "|")
    assert decode_hl7v2(as_cr(no_pv1_45)).events[0].observed_at == datetime(2024, 3, 16, 15, 0, tzinfo=UTC)
    no_evn_6 = no_pv1_45.replace("|nurse^J|20240316100000-0500", "|nurse^J|")
    assert decode_hl7v2(as_cr(no_evn_6)).events[0].observed_at == datetime(2024, 3, 16, 15, 15, tzinfo=UTC)
    no_time = no_evn_6.replace("EVN|A03|20240316101500-0500", "EVN|A03|")
    assert [r.reason for r in decode_hl7v2(as_cr(no_time)).rejected] == ["missing_time"]


def test_a_discharge_without_a_patient_is_refused() -> None:
    no_patient = ADT_A03.replace("PID|1||4420011^^^HOSP^MR~99^^^HOSP^PI||DOE^JANE", "PID|1||||DOE^JANE")
    assert [r.reason for r in decode_hl7v2(as_cr(no_patient)).rejected] == ["missing_subject"]


def test_a_cancel_of_a_discharge_is_one_cancel_event_at_its_own_time() -> None:
    # ADT^A13: PV1-45 may still name the discharge it cancels; the cancel's time is EVN-6, else EVN-2
    cancel = ADT_A03.replace("ADT^A03^ADT_A03|ADT-88", "ADT^A13^ADT_A01|ADT-89").replace("EVN|A03", "EVN|A13")
    result = decode_hl7v2(as_cr(cancel))
    assert result.rejected == [] and result.ignored == []
    (event,) = result.events
    assert (event.kind, event.code, event.value, event.patient_id) == ("encounter", "cancel_discharge", 1.0, "4420011")
    assert event.encounter == "VN-5521" and event.ward == "MICU"
    assert event.observed_at == datetime(2024, 3, 16, 15, 0, tzinfo=UTC)  # EVN-6, not PV1-45's 14:55
    discharge = decode_hl7v2(as_cr(ADT_A03)).events[0]
    assert event.event_id != discharge.event_id
    no_evn_6 = cancel.replace("|nurse^J|20240316100000-0500", "|nurse^J|")
    assert decode_hl7v2(as_cr(no_evn_6)).events[0].observed_at == datetime(2024, 3, 16, 15, 15, tzinfo=UTC)
    no_time = no_evn_6.replace("EVN|A13|20240316101500-0500", "EVN|A13|")
    refused = decode_hl7v2(as_cr(no_time)).rejected
    assert [r.reason for r in refused] == ["missing_time"] and "EVN-6, EVN-2" in refused[0].detail


def test_a_cancelled_admission_is_one_cancel_admit_of_its_visit_at_its_own_time() -> None:
    """ADT^A11 (the admission entered in error, or the patient not admitted after all): a
    ``cancel_admit`` naming the visit (PV1-19), which ends only the stay of that visit (models.stays)."""
    cancel = ADT_A03.replace("ADT^A03^ADT_A03|ADT-88", "ADT^A11^ADT_A09|ADT-90").replace("EVN|A03", "EVN|A11")
    result = decode_hl7v2(as_cr(cancel), units=ICU)
    assert result.rejected == [] and result.ignored == []
    (event,) = result.events
    assert (event.kind, event.code, event.value, event.patient_id) == ("encounter", "cancel_admit", 1.0, "4420011")
    assert event.encounter == "VN-5521" and event.ward == "MICU"
    assert event.observed_at == datetime(2024, 3, 16, 15, 0, tzinfo=UTC)  # EVN-6, not PV1-45
    no_evn_6 = cancel.replace("|nurse^J|20240316100000-0500", "|nurse^J|")
    assert decode_hl7v2(as_cr(no_evn_6)).events[0].observed_at == datetime(2024, 3, 16, 15, 15, tzinfo=UTC)


@pytest.mark.parametrize("trigger", ["A01", "A04", "A08", "A05", ""])
def test_other_adt_triggers_are_ignored_and_counted_not_dead_lettered(trigger: str) -> None:
    other = ADT_A03.replace("ADT^A03^ADT_A03", f"ADT^{trigger}")
    result = decode_hl7v2(as_cr(other), units=ICU)
    assert result.events == [] and result.rejected == []
    assert [r.reason for r in result.ignored] == ["adt_not_discharge"]


ADT_A40 = """
MSH|^~\\&|EPIC|GOODHEALTH|VIGIL|HOSP|20240316101502-0500||ADT^A40^ADT_A39|ADT-91|P|2.5.1
EVN|A40|20240316101500-0500
PID|1||4420011^^^HOSP^MR||DOE^JANE
MRG|8810044^^^HOSP^PI~7730012^^^HOSP^MR
PV1|1|I|MICU^12^A^HOSP
"""


@pytest.mark.parametrize("trigger", ["A40", "A34", "A18", "A47"])
def test_a_patient_merge_is_a_dead_letter_of_its_own_not_an_ignored_adt(trigger: str) -> None:
    """The id given up (MRG-1) may hold an open stay, its alert escalating, that nothing ends until
    the state's TTL: the operators must see the merge (``adt_merge``, an MLLP sender's AE), not an
    ``adt_not_discharge`` counted among the A08s. No id in the letter's detail."""
    merge = ADT_A40.replace("ADT^A40^ADT_A39", f"ADT^{trigger}").replace("EVN|A40", f"EVN|{trigger}")
    result = decode_hl7v2(as_cr(merge), units=ICU)
    assert result.events == [] and result.ignored == []
    (letter,) = result.rejected
    assert letter.reason == "adt_merge" and f"ADT^{trigger} (patient merge)" in letter.detail
    assert "scored from its own hour 0" in letter.detail
    assert not any(number in letter.detail for number in ("4420011", "7730012", "8810044"))


@pytest.mark.parametrize(
    ("mrg", "reason", "detail"),
    [
        (None, "adt_merge", "without MRG-1"),
        ("MRG|", "adt_merge", "without MRG-1"),
        ("MRG|4420011^^^HOSP^MR", "adt_not_discharge", "keeps the patient's id"),
        ("MRG|8810044^^^HOSP^PI~4420011^^^HOSP^MR", "adt_not_discharge", "keeps the patient's id"),  # MR read
        ("MRG|4420011^^^HOSP^PI~7730012^^^HOSP^MR", "adt_merge", "not applied"),
    ],
)
def test_a_merge_without_the_id_given_up_is_refused_and_one_keeping_the_id_ignored(
    mrg: str | None, reason: str, detail: str
) -> None:
    lines = [line for line in ADT_A40.strip().splitlines() if not line.startswith("MRG")]
    if mrg is not None:
        lines.insert(3, mrg)
    result = decode_hl7v2(as_cr("\n".join(lines)))
    assert result.events == []
    (outcome,) = result.rejected + result.ignored
    assert outcome.reason == reason and detail in outcome.detail
    assert (result.rejected == []) == (reason == "adt_not_discharge")


# --- ADT transfers: out of a monitored unit ends the stay, where the site names its units ---------

ICU = Units.of(["micu", " SICU "], away=["OR", "CT"])  # PV1-3.1 compared without case or spaces


def transfer(to: str, prior: str, trigger: str = "A02") -> bytes:
    """ADT^A02 (or A12): PV1-3 the new (for A12: the restored) location, PV1-6 the prior one."""
    return as_cr(f"""
MSH|^~\\&|EPIC|GOODHEALTH|VIGIL|HOSP|20240316101502-0500||ADT^{trigger}^ADT_A02|ADT-{trigger}-{to}|P|2.5.1
EVN|{trigger}|20240316101500-0500|||nurse^J|20240316100000-0500
PID|1||4420011^^^HOSP^MR
PV1|1|I|{to}^4^A^HOSP|||{prior}^12^A^HOSP|||||||||||||VN-5521
""")


def test_a_transfer_out_of_a_monitored_unit_is_the_stays_end() -> None:
    result = decode_hl7v2(transfer("WARD4", "MICU"), units=ICU)
    assert result.rejected == [] and result.ignored == []
    (event,) = result.events
    assert (event.kind, event.code, event.value, event.patient_id) == ("encounter", "transfer_out", 1.0, "4420011")
    assert event.ward == "MICU" and event.encounter == "VN-5521"  # the unit the stay was in
    assert event.observed_at == datetime(2024, 3, 16, 15, 0, tzinfo=UTC)  # EVN-6, the move
    assert checked(transfer("WARD4", "MICU")).events == []  # the default: no monitored units


def test_a_transfer_from_theatre_to_a_ward_is_a_transfer_out_the_stream_decides_on() -> None:
    """MICU -> OR (ignored: the patient comes back) -> WARD4: the codec cannot know where the
    patient was before theatre; the stream ends the stay if it holds one open (models.stays)."""
    (event,) = decode_hl7v2(transfer("WARD4", "OR"), units=ICU).events
    assert event.code == "transfer_out" and event.ward is None  # the stay's own unit, not theatre
    (undo,) = decode_hl7v2(transfer("OR", "WARD4", trigger="A12"), units=ICU).events
    assert undo.code == "cancel_transfer" and undo.ward == "OR"
    for to, prior in [("OR", ""), ("OR", "CT"), ("OR", "MICU"), ("WARD4", "WARD5")]:  # ended no stay
        result = decode_hl7v2(transfer(to, prior, trigger="A12"), units=ICU)
        assert result.events == [] and [r.reason for r in result.ignored] == ["adt_transfer"]


@pytest.mark.parametrize(
    ("to", "prior", "why"),
    [
        ("SICU", "MICU", "the stay goes on"),  # ICU to ICU: one stay
        ("OR", "MICU", "the stay goes on"),  # theatre: the patient comes back
        ("MICU", "WARD4", "leaves no monitored or away unit"),  # into the ICU: the first observation starts the stay
        ("WARD4", "WARD5", "leaves no monitored or away unit"),
        ("WARD4", "", "leaves no monitored or away unit"),  # without PV1-6 Vigil cannot tell
        ("CT", "OR", "the stay goes on"),  # theatre to imaging
        ("", "MICU", "the stay goes on"),
    ],
)
def test_a_transfer_that_does_not_leave_the_monitored_units_is_ignored(to: str, prior: str, why: str) -> None:
    result = decode_hl7v2(transfer(to, prior), units=ICU)
    assert result.events == [] and result.rejected == []
    (ignored,) = result.ignored
    assert ignored.reason == "adt_transfer" and why in ignored.detail


def test_away_units_mean_nothing_without_monitored_units() -> None:
    """The default scores every result: theatre's too (the scoring step reads ``away``)."""
    assert Units.of([], ["OR"]) == Units() and Units.of(["MICU"], ["or "]).away == {"OR"}
    assert decode_hl7v2(from_unit("OR"), units=Units.of([], ["OR"])).events


def test_without_monitored_units_a_transfer_is_ignored_and_says_what_to_set() -> None:
    (ignored,) = decode_hl7v2(transfer("WARD4", "MICU")).ignored
    assert ignored.reason == "adt_transfer" and "ingest.monitored_units" in ignored.detail


def test_a_cancelled_transfer_back_into_a_monitored_unit_cancels_the_end() -> None:
    result = decode_hl7v2(transfer("MICU", "WARD4", trigger="A12"), units=ICU)
    (event,) = result.events
    assert (event.code, event.ward, event.encounter) == ("cancel_transfer", "MICU", "VN-5521")
    assert event.observed_at == datetime(2024, 3, 16, 15, 0, tzinfo=UTC)
    assert decode_hl7v2(transfer("MICU", "", trigger="A12"), units=ICU).events[0].code == "cancel_transfer"
    for to, prior in [("MICU", "SICU"), ("MICU", "OR"), ("WARD4", "MICU")]:  # that transfer ended no stay
        result = decode_hl7v2(transfer(to, prior, trigger="A12"), units=ICU)
        assert result.events == [] and [r.reason for r in result.ignored] == ["adt_transfer"]


def test_the_transfer_fixtures_end_and_resume_a_stay_at_the_fixtures_icu() -> None:
    site = Units.of(["icu-3"])
    (out,) = decode_hl7v2(fixture("adt_a02_transfer.hl7"), units=site).checked(datetime.now(UTC)).events
    (back,) = decode_hl7v2(fixture("adt_a12_cancel_transfer.hl7"), units=site).checked(datetime.now(UTC)).events
    assert (out.code, out.ward, out.encounter) == ("transfer_out", "ICU-3", "V77120044")
    assert (back.code, back.ward) == ("cancel_transfer", "ICU-3") and back.observed_at > out.observed_at


def test_the_cancel_admit_fixture_names_the_visit_its_results_name() -> None:
    (cancel,) = decode_hl7v2(fixture("adt_a11_cancel_admit.hl7"), units=Units.of(["icu-3"])).events
    (result, *_) = decode_hl7v2(fixture("oru_r01_vitals.hl7")).events
    assert (cancel.code, cancel.ward, cancel.encounter) == ("cancel_admit", "ICU-3", result.encounter)
    assert cancel.observed_at == datetime(2024, 3, 16, 10, 40, tzinfo=UTC)  # EVN-6


def test_a_transfer_and_its_cancel_are_events_of_their_own() -> None:
    out = decode_hl7v2(transfer("WARD4", "MICU"), units=ICU).events[0]
    back = decode_hl7v2(transfer("MICU", "WARD4", trigger="A12"), units=ICU).events[0]
    discharge = decode_hl7v2(as_cr(ADT_A03)).events[0]
    assert len({out.event_id, back.event_id, discharge.event_id}) == 3
    assert decode_hl7v2(transfer("WARD4", "MICU"), units=ICU).events[0].event_id == out.event_id


# --- results from a unit Vigil does not watch: ignored (counted), where the site names its units ----


def from_unit(unit: str | None, *obx: str) -> bytes:
    """An ORU^R01 whose PV1-3 names ``unit`` (no PV1 segment when None)."""
    pv1 = [] if unit is None else [f"PV1|1|I|{unit}^12^B^HOSP|||||||||||||||||VN-5521"]
    return as_cr("\n".join([MSH, PID, *pv1, "OBR|1|||VS|||20240315142000+0000", *(obx or [hr_obx()])]))


@pytest.mark.parametrize("unit", ["MICU", "micu", " SICU", "OR", "ct", "", None])
def test_results_from_a_monitored_or_away_unit_or_from_no_unit_are_scored(unit: str | None) -> None:
    result = decode_hl7v2(from_unit(unit), units=ICU)
    assert result.rejected == [] and result.ignored == []
    assert [(e.code, e.value) for e in result.events] == [("HR", 72.0)]


def test_results_from_a_ward_are_ignored_where_the_site_names_its_units() -> None:
    """A hospital-wide feed sends the wards' results too: not Vigil's to score (a ward patient would
    open a stay and appear on the ICU's dashboard), not an error (no dead letter), counted."""
    result = decode_hl7v2(from_unit("WARD4", hr_obx(), hr_obx("75")), units=ICU)
    assert result.events == [] and result.rejected == []
    (ignored,) = result.ignored  # one per message, however many results it carries
    assert ignored.reason == "unmonitored_unit" and "WARD4" in ignored.detail and "CTRL-1" in ignored.detail
    assert result.accounted
    malformed = decode_hl7v2(from_unit("WARD4", "OBX|1|NM|8867-4^Heart rate^LN||fast"), units=ICU)
    assert malformed.rejected == [] and [r.reason for r in malformed.ignored] == ["unmonitored_unit"]
    unsite = decode_hl7v2(from_unit("WARD4"))  # no units named (the default): every result is scored
    assert [e.code for e in unsite.events] == ["HR"] and unsite.ignored == []


def test_the_ward_fixture_is_ignored_at_the_fixtures_icu_and_scored_without_units() -> None:
    site = Units.of(["ICU-3"])
    assert [r.reason for r in decode_hl7v2(fixture("oru_r01_local_codes.hl7"), units=site).ignored] == [
        "unmonitored_unit"
    ]
    assert decode_hl7v2(fixture("oru_r01_local_codes.hl7")).events
    assert decode_hl7v2(fixture("oru_r01_vitals.hl7"), units=site).events


def test_oru_without_obx_is_rejected() -> None:
    assert [r.reason for r in decode_hl7v2(as_cr(f"{MSH}\n{PID}")).rejected] == ["no_observations"]


@pytest.mark.parametrize(
    ("value_type", "value", "expected"),
    [("NM", "7.2", 7.2), ("NM", "<0.5", 0.5), ("NM", ">15", 15.0), ("SN", ">^15", 15.0), ("SN", "^4.4", 4.4)],
)
def test_numeric_and_structured_numeric_values(value_type: str, value: str, expected: float) -> None:
    obx = f"OBX|1|{value_type}|2524-7^Lactate^LN||{value}|mmol/L^^UCUM|||||F|||20240315142500+0000"
    assert decode_hl7v2(message(obx)).events[0].value == expected


@pytest.mark.parametrize(("value_type", "value"), [("SN", "^1^:^2"), ("ST", "see note"), ("NM", "")])
def test_values_that_are_not_one_number(value_type: str, value: str) -> None:
    obx = f"OBX|1|{value_type}|2524-7^Lactate^LN||{value}|mmol/L^^UCUM|||||F|||20240315142500+0000"
    assert [r.reason for r in decode_hl7v2(message(obx)).rejected] == ["no_value"]


def test_unknown_units_and_implausible_values() -> None:
    assert [r.reason for r in checked(message(hr_obx(units="Hz^^UCUM"))).rejected] == ["unit"]
    assert [r.reason for r in checked(message(hr_obx(value="720"))).rejected] == ["out_of_range"]


def test_alternate_loinc_identifier_in_obx3() -> None:
    obx = "OBX|1|NM|HRATE^Heart rate^99LOC^8867-4^Heart rate^LN||72|/min|||||F|||20240315142500+0000"
    assert decode_hl7v2(message(obx)).events[0].code == "HR"


def test_unknown_loinc_code_is_not_looked_up_as_local() -> None:
    obx = "OBX|1|NM|RR^not a loinc^LN||72|/min|||||F|||20240315142500+0000"
    result = decode_hl7v2(message(obx))
    assert [r.reason for r in result.rejected] == ["unmapped_code"]
    assert result.unknown_codes == {"LN|RR": 1}


def test_event_ids_are_deterministic_per_message_and_obx() -> None:
    payload = message(hr_obx("72"), hr_obx("73").replace("OBX|1|", "OBX|2|"))
    first = [e.event_id for e in decode_hl7v2(payload).events]
    assert len(set(first)) == 2
    assert first == [e.event_id for e in decode_hl7v2(payload).events]
    other = message(hr_obx("72"), msh=MSH.replace("CTRL-1", "CTRL-9"))
    assert decode_hl7v2(other).events[0].event_id not in first


@pytest.mark.parametrize(
    "payload",
    [b"", b"hello", b"MSH", b"MSH|", b"PID|1||x", b"\x0b\x1c\x0d", b"MSH^~\\&|no field separator"],
)
def test_garbage_is_a_parse_error_or_rejected(payload: bytes) -> None:
    result = decode_hl7v2(payload)
    assert result.events == []
    assert len(result.rejected) >= 1


def test_hl7v2_events_go_through_the_strict_event_rules() -> None:
    """Identifiers with control or bidi characters and pre-1990 times are ``schema`` dead letters
    here too (issue 16): the codec builds its events through the same PatientEvent."""
    raw = (Path(__file__).parent / "fixtures" / "hl7v2" / "oru_r01_vitals.hl7").read_bytes()
    spoofed = decode_hl7v2(raw.replace(b"4420011", "44\u202e20011".encode()))
    assert not spoofed.events and "schema" in {r.reason for r in spoofed.rejected}  # (BMI: unmapped_code)
    old = decode_hl7v2(raw.replace(b"20240315142500", b"19700315142500"))
    assert not old.events and "schema" in {r.reason for r in old.rejected}


# --- values, units and codes labs and monitors send --------------------------------------------------


def lab_obx(loinc: str, value: str, units: str, value_type: str = "NM") -> str:
    return f"OBX|1|{value_type}|{loinc}^x^LN||{value}|{units}|||||F|||20240315142500+0000"


@pytest.mark.parametrize("units", ["", "pH", "[pH]"])
def test_a_ph_with_an_empty_obx6_or_unit_ph_is_read(units: str) -> None:
    """HL7 labs send a pH with OBX-6 empty (a pH has no unit): it was refused ``unit``."""
    result = checked(message(lab_obx("2744-1", "7.21", units)))
    assert [(e.code, e.value, e.unit) for e in result.events] == [("pH", 7.21, "[pH]")] and result.rejected == []


@pytest.mark.parametrize(
    ("units", "value", "expected"),
    [
        ("1", "0.95", 95.0),  # UCUM: a fraction, read as an MDC code without a name and refused ``unit``
        ("1^^UCUM", "0.95", 95.0),
        ("%", "95", 95.0),
        ("262688^MDC_DIM_PERCENT^MDC", "97", 97.0),  # an MDC unit: its name, as before
        ("262688^MDC_DIM_PERCENT", "97", 97.0),  # without OBX-6.3, named by its dimension
    ],
)
def test_a_number_in_obx6_is_an_mdc_code_only_where_it_says_so(units: str, value: str, expected: float) -> None:
    result = checked(message(lab_obx("59408-5", value, units)))
    assert [(e.value, e.unit) for e in result.events] == [(expected, "%")] and result.rejected == []


def test_mdc_units_of_a_monitor_still_read() -> None:
    result = checked(
        message("OBX|1|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC||97|262688^MDC_DIM_PERCENT^MDC|||||F|||20240315142500+0000")
    )
    assert [(e.code, e.value, e.unit) for e in result.events] == [("O2Sat", 97.0, "%")]


BLOOD_GAS_ORDER = "OBR|1|||24336-0^Gas panel - Arterial blood^LN|||20240315142000+0000"


@pytest.mark.parametrize(
    ("identifier", "obr", "code"),
    [
        ("2708-6^Oxygen saturation in Arterial blood^LN", BLOOD_GAS_ORDER, "SaO2"),  # a blood gas: the model's SaO2
        ("2708-6^SpO2^LN", "OBR|1|||VS|||20240315142000+0000", "O2Sat"),  # a monitor gateway's SpO2
        ("59408-5^SpO2^LN", BLOOD_GAS_ORDER, "O2Sat"),  # pulse oximetry
        ("150456^MDC_PULS_OXIM_SAT_O2^MDC", BLOOD_GAS_ORDER, "O2Sat"),  # the monitor's pulse oximeter
    ],
)
def test_arterial_saturation_is_sao2_in_a_blood_gas_and_o2sat_otherwise(identifier: str, obr: str, code: str) -> None:
    """LOINC 2708-6 in OBX-3 under a blood gas order is a lab's: it went into O2Sat (SpO2, NEWS2's
    saturation) and the model's SaO2 input stayed empty (set A's SaO2 is the blood gas). Anywhere
    else it is SpO2 (tests/unit/codecs/test_saturation.py)."""
    obx = f"OBX|1|NM|{identifier}||96|%|||||F|||20240315142500+0000"
    assert [e.code for e in checked(message(obx, obr=obr)).events] == [code]


@pytest.mark.parametrize(("value_type", "value"), [("NM", "80~120"), ("NM", "80~"), ("SN", ">^15~<^2")])
def test_a_repeated_value_is_refused_not_cut_to_its_first(value_type: str, value: str) -> None:
    """One OBX, one value: ``80~120`` kept 80, a number the sender did not send alone."""
    result = decode_hl7v2(message(hr_obx().replace("|NM|", f"|{value_type}|").replace("||72|", f"||{value}|")))
    assert result.events == [] and [r.reason for r in result.rejected] == ["no_value"]
    assert "repeats" in result.rejected[0].detail
