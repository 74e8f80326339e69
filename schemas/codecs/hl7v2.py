"""HL7 v2 ``ORU^R01`` (observations), ``ADT^A03`` (discharge), ``ADT^A13`` (cancel discharge),
``ADT^A11`` (cancel admit) and, where
the site names its monitored units, ``ADT^A02``/``ADT^A12`` (a transfer out of them, its cancel) ->
Vigil events, parsed with the ``hl7`` package.

Accepted framing: raw messages or MLLP frames (``\\x0b ... \\x1c\\x0d``), segments separated by
``\\r`` (the standard), ``\\n`` or ``\\r\\n`` (files edited by people), several messages in one payload
(a batch, with or without FHS/BHS envelopes). Errors are data: ``decode_hl7v2`` never raises.

Field use (HL7 v2.5.1 chapter 7): PID-3 patient identifier (the ``MR`` repetition, else the first;
CX.1), PID-7 date of birth (``Age`` at the patient's first measurement, in years as PhysioNet gives it),
PID-8 administrative sex (``Gender``: M 1, F 0, others none), PV1-3.1 point of care (ward), PV1-19.1
visit number (encounter), OBR-7 observation time (fallback), OBX-2 value type, OBX-3 observation
identifier (CWE: LOINC when the coding system is ``LN``, IEEE 11073 when ``MDC``, otherwise a
site-local code from ``schemas.codecs.loinc``), OBX-5 value, OBX-6 units, OBX-11 result status,
OBX-14 observation time. An ``ORU^R01`` may carry
several patients (its PATIENT_RESULT group repeats, as a lab's batch does): each PID starts a group
with its PV1, and an OBX is its own group's patient's, never another's; so are its PID's age and
sex, read only beside a measurement of its that intake publishes (a vital sign or a lab: alone
they would open a stay, ``models.stays``, scored by the rules alone until its first measurement;
an ADT message's PID is not read for them, for the same reason). ``ADT^A03`` (chapter 3):
a ``discharge`` event (``models.stays``) at PV1-45 discharge time, else EVN-6 event occurred, else
EVN-2 recorded time; ``ADT^A13``: a ``cancel_discharge`` at EVN-6, else EVN-2; ``ADT^A11`` (cancel
admit: entered in error, or not admitted after all): a ``cancel_admit`` at EVN-6, else EVN-2, which
ends the stay whose events name its visit (PV1-19). ``ADT^A02`` (transfer,
PV1-3 the new location, PV1-6 the prior one) out of a monitored or away unit to a unit that is
neither (``Units``) is a ``transfer_out`` at EVN-6, else EVN-2: it ends the patient's stay, if
Vigil holds one open, as a discharge would; ``ADT^A12`` (cancel transfer, PV1-3 the location
restored) that may undo one is a ``cancel_transfer``. A patient merge or id change (``ADT_MERGES``:
``ADT^A40``...; MRG-1 the id given up) is a dead letter ``adt_merge``: Vigil does not move a stay
between ids. The other ADT triggers (admit, update...) and
the transfers that cannot leave the monitored units are ignored, counted, not dead-lettered: an
interface engine sends a unit all of them. So is an ``ORU^R01`` whose PV1-3.1 names a unit neither
monitored nor away, where the site names its units: a ward's results are not Vigil's to score.
Rules: docs/interop.md.
"""

from __future__ import annotations

import hashlib
import re
from codecs import BOM_UTF8
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any, Final

import hl7

from vigil.schemas.codecs.care_units import NO_UNITS, Units
from vigil.schemas.codecs.loinc import (
    ACVPU_VALUES,
    YES_NO_VALUES,
    DecodeResult,
    age_at,
    canonical_event,
    canonical_for_coding,
    canonical_for_local,
    date_of_birth,
    demographic_event,
    first_measurement,
    gender_value,
    is_blood_gas_panel,
    saturation_code,
)
from vigil.schemas.codes import CANCEL_ADMIT, CANCEL_DISCHARGE, DISCHARGE, TRANSFER_OUT
from vigil.schemas.deadletter import Rejected
from vigil.schemas.events import PatientEvent, point_of_care

SOURCE: Final = "hl7v2"
MAX_PAYLOAD_BYTES: Final = 8 * 1024 * 1024

# OBX-11 (HL7 table 0085). F final and C corrected are results; P preliminary and R "entered, not
# verified" are accepted too: monitor and point-of-care feeds send vitals as P/R until a nurse
# validates them, and an early warning must not wait for that (a later F/C replaces the value).
# D deleted and W wrong (a result sent for the wrong patient, or in error) withdraw a result sent
# before -> ``retracted``, a reason of its own so an operator sees the withdrawal (docs/interop.md: the
# value already scored stays in the patient's window). X cannot be obtained, I in process, N not
# asked, O order only, S partial, U status change without a value: no usable result -> ``not_final``.
# An empty OBX-11 is accepted as final: it is required by the standard, but device gateways omit it.
ACCEPTED_RESULT_STATUSES: Final = frozenset({"F", "C", "P", "R", ""})
RETRACTED_RESULT_STATUSES: Final = frozenset({"D", "W"})

# Value types that carry one number (NM, SN) or a charted word Vigil maps (ACVPU, yes/no).
_NUMBER = re.compile(r"^\s*(<=|>=|<|>|=)?\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*$")
# HL7 TS/DTM: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]
_TIMESTAMP = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(?:(\d{2})(?:\.(\d{1,4}))?)?([+-]\d{4})?$")
_OFFSET = re.compile(r"([+-])(\d{2})(\d{2})$")
# PID-7 date/time of birth (TS/DTM) to the day at least; a time of birth and its offset are read past:
# the age is counted in days, from the date of birth as the sender wrote it
_BIRTH_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})(?:\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,4})?)?)?)?(?:[+-]\d{4})?$")
_BATCH_SEGMENTS: Final = frozenset({"FHS", "BHS", "BTS", "FTS"})


def decode_hl7v2(
    payload: bytes | bytearray | memoryview | str, *, default_tz: tzinfo = UTC, units: Units = NO_UNITS
) -> DecodeResult:
    """Decode one HL7v2 payload (one or more ORU^R01 or ADT messages).

    ``default_tz`` applies to timestamps without an offset when MSH-7 has none either (HL7 says such
    a time is the sender's local time; the sender's offset in MSH-7 is used first): the site's zone,
    ``IngestSettings.hl7_zone()`` (a ``ZoneInfo``, so each time takes the offset of its own date,
    summer time included). ``units``: the site's monitored and away units, which results are scored
    and which ADT transfers end a stay (by default every result is scored and no transfer ends one)."""
    result = DecodeResult()
    try:
        for message_text in _split_messages(payload, result):
            before = len(result.events)
            try:
                _decode_message(message_text, result, default_tz, units)
            except Exception as exc:  # isolate a codec bug to its message; never crash a worker
                del result.events[before:]
                result.rejected.append(Rejected("internal", f"decoder error {type(exc).__name__}"))
    except Exception as exc:
        result.rejected.append(Rejected("internal", f"decoder error {type(exc).__name__}"))
    return result


def _split_messages(payload: bytes | bytearray | memoryview | str, result: DecodeResult) -> list[str]:
    if isinstance(payload, bytes | bytearray | memoryview):
        raw = bytes(payload)
        if len(raw) > MAX_PAYLOAD_BYTES:
            result.rejected.append(Rejected("too_large", f"payload is {len(raw)} bytes (limit {MAX_PAYLOAD_BYTES})"))
            return []
        # a UTF-8 byte-order mark (a file saved by a Windows editor) is skipped before the character
        # set is chosen: before MSH it hid the segment, and the whole file was "no MSH segment"
        raw = raw.removeprefix(BOM_UTF8)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # HL7v2 default character set is ASCII, in practice often ISO 8859-1 (MSH-18 8859/1)
            text = raw.decode("latin-1")
    elif isinstance(payload, str):
        text = payload.removeprefix("\ufeff")
    else:
        result.rejected.append(Rejected("parse_error", f"payload is {type(payload).__name__}, not bytes"))
        return []
    # MLLP: \x0b starts a block, \x1c\x0d ends it; several frames may be concatenated
    text = text.replace("\x0b", "\r").replace("\x1c", "\r")
    text = text.replace("\r\n", "\r").replace("\n", "\r")
    segments = [line.lstrip() for line in text.split("\r") if line.strip()]
    messages: list[list[str]] = []
    for segment in segments:
        name = segment[:3]
        if name == "MSH":
            messages.append([segment])
        elif name in _BATCH_SEGMENTS and len(segment) > 3 and not segment[3].isalnum():
            continue  # batch envelope: carries no observations
        elif messages:
            messages[-1].append(segment)
    if not messages:
        result.rejected.append(Rejected("parse_error", "no MSH segment: not an HL7v2 message"))
    return ["\r".join(m) for m in messages]


def _decode_message(text: str, result: DecodeResult, default_tz: tzinfo, units: Units) -> None:
    # MSH-1 (the field separator) and MSH-2 (the encoding characters) must be present
    if len(text) < 8 or text[3].isalnum() or text[3].isspace():
        result.rejected.append(Rejected("parse_error", "MSH segment has no field separator"))
        return
    try:
        message = hl7.parse(text)
        msh = message.segment("MSH")
    except Exception as exc:  # the hl7 package raises several types on malformed input
        result.rejected.append(Rejected("parse_error", f"hl7 parse failed: {type(exc).__name__}"))
        return
    message_type = _field(msh, 9, component=1).upper()
    trigger = _field(msh, 9, component=2).upper()
    control_id = _field(msh, 10)
    where = f"MSH-10 {control_id[:40]!r} " if control_id else ""
    key = _message_key(msh, control_id, text)
    sender_tz = _offset(_field(msh, 7)) or default_tz
    if message_type == "ADT":
        _decode_adt(message, trigger, result, where=where, key=key, sender_tz=sender_tz, units=units)
        return
    if message_type != "ORU" or trigger not in ("R01", ""):
        result.rejected.append(
            Rejected("unsupported_message", f"{where}message type {message_type}^{trigger} is not ORU^R01 (nor ADT)")
        )
        return

    groups = _patient_groups(list(message))
    if not any(group.results for group in groups):
        pv1 = next((group.pv1 for group in groups if group.pv1 is not None), None)
        if not _from_elsewhere(pv1, result, where, units):
            result.rejected.append(Rejected("no_observations", f"{where}ORU^R01 without OBX segments"))
        return
    for ordinal, group in enumerate(groups):  # groups[0] holds what comes before any PID: PID[n] is groups[n]
        if group.results:
            _decode_patient_group(group, ordinal, result, where=where, key=key, sender_tz=sender_tz, units=units)


@dataclass
class _PatientGroup:
    """One PATIENT_RESULT of an ``ORU^R01`` (HL7 v2.5.1 7.3.1: ``{PID [PV1] {OBR {OBX}}}``, repeated):
    its PID (None for the OBX sent before any PID), its PV1 and its OBX, each with its position in
    the message and the OBR-7 of its order. A lab's message carries several patients' results: each
    PID starts a group, and a result belongs to the patient of its own group, never to the first."""

    pid: Any = None
    pv1: Any = None
    results: list[tuple[int, Any, _Order]] = field(default_factory=list)


@dataclass(frozen=True)
class _Order:
    """What an OBX reads from the OBR above it: OBR-7, its time when OBX-14 is empty, and whether
    OBR-4 orders a blood gas panel (``loinc.saturation_code``: 2708-6 is SaO2 only there)."""

    time: str = ""
    blood_gas: bool = False


def _order(obr: Any) -> _Order:
    """OBR-4 is a CWE like OBX-3: a blood gas panel named by its identifier or its alternate one."""
    panels = ((_field(obr, 4, component=3), _field(obr, 4)), (_field(obr, 4, component=6), _field(obr, 4, component=4)))
    return _Order(_field(obr, 7), any(is_blood_gas_panel(system, code) for system, code in panels))


def _patient_groups(segments: list[Any]) -> list[_PatientGroup]:
    """The message's patient groups in order, the first for what comes before any PID. OBX positions
    count through the whole message, as the event ids always have (a replay keeps its ids)."""
    groups = [_PatientGroup()]
    order = _Order()
    position = 0
    for segment in segments:
        name = _name(segment)
        if name == "PID":
            groups.append(_PatientGroup(pid=segment))
            order = _Order()  # an order belongs to its patient
        elif name == "PV1" and groups[-1].pv1 is None:
            groups[-1].pv1 = segment
        elif name == "OBR":
            order = _order(segment)
        elif name == "OBX":
            position += 1
            groups[-1].results.append((position, segment, order))
    return groups


def _from_elsewhere(pv1: Any, result: DecodeResult, where: str, units: Units) -> bool:
    """Whether PV1-3.1 names a unit the site does not score: then ignored (counted by unit), not an
    error: a ward's results are not Vigil's."""
    assigned = _field(pv1, 3)  # the point of care ('' without PV1)
    elsewhere = units.scored(assigned)
    if elsewhere is None:
        return False
    result.ignored.append(Rejected(elsewhere.reason, where + elsewhere.detail))
    result.ignored_units[point_of_care(assigned)] += 1
    return True


def _decode_patient_group(
    group: _PatientGroup,
    ordinal: int,
    result: DecodeResult,
    *,
    where: str,
    key: str,
    sender_tz: tzinfo,
    units: Units,
) -> None:
    """One patient's results: scored where its own PV1 says (one ignore for the group from a ward),
    refused whole when its PID names no patient (the results of a group without a patient are
    nobody's: never given to another patient of the message). With at least one measurement that
    intake publishes (``loinc.first_measurement``: a vital sign or a lab, its unit and range checked),
    its PID's age and sex too (``_demographics``), at the time of the earliest; none beside
    assessments, treatments or refused values alone (the next message with a measurement carries them)."""
    if _from_elsewhere(group.pv1, result, where, units):
        return
    first, last = group.results[0][0], group.results[-1][0]
    read = f"OBX[{first}]" if first == last else f"OBX[{first}] to OBX[{last}]"
    if group.pid is None:
        detail = f"{where}{read} before any PID segment: whose results they are is unknown"
        result.rejected.append(Rejected("missing_subject", detail))
        return
    patient_id = _patient_id(group.pid)
    if not patient_id:
        result.rejected.append(Rejected("missing_subject", f"{where}PID-3 has no patient identifier ({read})"))
        return
    ward = _field(group.pv1, 3) or None
    encounter = (_field(group.pv1, 19) or None) if group.pv1 is not None else None
    before = len(result.events)
    for position, obx, order in group.results:
        outcome = _decode_obx(
            obx,
            position,
            order,
            result,
            where=where,
            key=key,
            patient_id=patient_id,
            ward=ward,
            encounter=encounter,
            sender_tz=sender_tz,
        )
        result.add(outcome)
    measured = first_measurement(result.events[before:])
    if measured is None:
        return  # no measurement of the patient's published: the age and sex would open a stay (models.stays)
    at = measured.observed_at.astimezone(sender_tz)  # the age on the sender's date
    pid_where = f"{where}PID[{ordinal}] "
    for demographic in _demographics(group.pid, at, measured, where=pid_where, key=key, ordinal=ordinal):
        result.add(demographic)


def _demographics(
    pid: Any, at: datetime, beside: PatientEvent, *, where: str, key: str, ordinal: int
) -> list[PatientEvent | Rejected]:
    """PID-7 (date/time of birth) -> ``Age`` at ``at``, PID-8 (administrative sex, table 0001) ->
    ``Gender``: the models' two static inputs, which PhysioNet gives every training stay. Read only
    beside the patient's measurements, never alone: a demographic event opens a window and is scored
    (``models.window``), so an ADT feed's or a lab's every patient would become a stay. A PID-7 Vigil
    cannot read is refused alone (the results stay read); a sex other than M or F is no value, not an
    error. Details name the field, never the date: it is PHI."""
    outcomes: list[PatientEvent | Rejected] = []
    born = _birth_date(_field(pid, 7))
    if born is not None:
        age = born if isinstance(born, Rejected) else age_at(born, at, "PID-7")
        if isinstance(age, Rejected):
            outcomes.append(Rejected(age.reason, where + age.detail))
        else:
            outcomes.append(_demographic("Age", age, beside, where, key, ordinal))
    gender = gender_value(_field(pid, 8))
    if gender is not None:
        outcomes.append(_demographic("Gender", gender, beside, where, key, ordinal))
    return outcomes


def _birth_date(value: str) -> date | Rejected | None:
    """PID-7 as a date, None when empty (or ``""``, HL7's null), or why it is none: a date of birth
    to the year or the month only would move the age by up to a year."""
    value = value.strip()
    if not value or value == '""':
        return None
    refused = Rejected("no_value", "PID-7 (date of birth) is not a date to the day (YYYYMMDD[HHMM[SS]][+/-ZZZZ])")
    return date_of_birth(_BIRTH_DATE.match(value), refused)


def _demographic(
    code: str, value: float, beside: PatientEvent, where: str, key: str, ordinal: int
) -> PatientEvent | Rejected:
    """One demographic of the message's PID ``ordinal``: its id the message's and the PID's."""
    part = f"pid[{ordinal}]:{code}"
    return demographic_event(
        code, value, source=SOURCE, key=key, part=part, patient_id=beside.patient_id, beside=beside, where=where
    )


def _message_key(msh: Any, control_id: str, text: str) -> str:
    """The message's identity for event ids: sending application, facility and MSH-10, or without a
    control id the content itself (a replay of the same bytes dedupes)."""
    if control_id:
        return f"{_field(msh, 3)}|{_field(msh, 4)}|{control_id}"
    return "sha256:" + hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()


# ADT triggers Vigil reads: the stay's end, and its cancel (the discharge was entered in error); a
# cancelled admission; a transfer and its cancel where ``Units`` says so. The time: of a discharge PV1-45 (discharge
# date/time), else EVN-6 (event occurred), else EVN-2 (recorded); of a cancel or a transfer EVN-6,
# else EVN-2 (PV1-45 may still name the discharge a cancel cancels)
_EVENT_TIME: Final = (("EVN", 6), ("EVN", 2))
ADT_EVENTS: dict[str, tuple[str | None, tuple[tuple[str, int], ...]]] = {
    "A03": (DISCHARGE, (("PV1", 45), *_EVENT_TIME)),
    "A13": (CANCEL_DISCHARGE, _EVENT_TIME),
    "A11": (CANCEL_ADMIT, _EVENT_TIME),  # ends only the stay whose events name its visit (PV1-19)
    "A02": (None, _EVENT_TIME),  # the code: Units.code_of
    "A12": (None, _EVENT_TIME),
}
# ADT triggers that merge a patient's record into another, or change its id (HL7 v2.5.1 3.3.18,
# 3.3.34, 3.3.36, 3.3.39, 3.3.40, 3.3.46, 3.3.47): MRG-1 the id given up, PID-3 the one kept.
# Vigil keys a stay by the id and cannot move one between ids: each is a dead letter ``adt_merge``,
# counted and seen by the operators, not an ignore, because the id given up may hold an open stay
# (its card and its alert, escalating) that nothing else ends until the state's TTL, while the id
# kept is scored from its own hour 0 (docs/interop.md, "A merged patient record").
ADT_MERGES: Final = frozenset({"A18", "A34", "A36", "A39", "A40", "A46", "A47"})


def _decode_adt(
    message: Any, trigger: str, result: DecodeResult, *, where: str, key: str, sender_tz: tzinfo, units: Units
) -> None:
    """ADT^A03 -> one ``discharge`` event, ADT^A13 -> one ``cancel_discharge``, ADT^A11 -> one
    ``cancel_admit``, ADT^A02/A12 -> either where ``units`` says; any other ADT trigger is ignored
    (counted, not an error), but a merge of two patients' records (``ADT_MERGES``): a dead letter."""
    if trigger in ADT_MERGES:
        merge = _merge_refusal(message, trigger, where)
        (result.rejected if merge.reason == "adt_merge" else result.ignored).append(merge)
        return
    if trigger not in ADT_EVENTS:
        detail = (
            f"{where}ADT^{trigger or '?'} is not a discharge (A03), a transfer (A02), their cancel (A13, A12) "
            "or a cancelled admission (A11)"
        )
        result.ignored.append(Rejected("adt_not_discharge", detail))
        return
    code, time_fields = ADT_EVENTS[trigger]
    segments = list(message)
    pid = next((s for s in segments if _name(s) == "PID"), None)
    pv1 = next((s for s in segments if _name(s) == "PV1"), None)
    evn = next((s for s in segments if _name(s) == "EVN"), None)
    assigned = _field(pv1, 3)
    ward = assigned or None
    if code is None:
        prior = _field(pv1, 6)
        transfer = units.code_of(trigger, assigned, prior)
        if isinstance(transfer, Rejected):
            result.ignored.append(Rejected(transfer.reason, where + transfer.detail))
            return
        code = transfer
        if code == TRANSFER_OUT:  # the stay's unit, which the patient left; out of theatre: the stay's own
            ward = units.stay_unit(prior)
    patient_id = _patient_id(pid) if pid is not None else ""
    if not patient_id:
        result.rejected.append(Rejected("missing_subject", f"{where}PID-3 has no patient identifier"))
        return
    segment_of = {"PV1": pv1, "EVN": evn}
    stamp = next((t for name, n in time_fields if (t := _field(segment_of[name], n)).strip()), "")
    if not stamp:
        named = ", ".join(f"{name}-{n}" for name, n in time_fields)
        result.rejected.append(Rejected("missing_time", f"{where}none of {named} has a time"))
        return
    observed_at = _timestamp(stamp, sender_tz)
    if isinstance(observed_at, Rejected):
        result.rejected.append(Rejected(observed_at.reason, where + observed_at.detail))
        return
    outcome = canonical_event(
        source=SOURCE,
        key=key,
        part=f"adt:{trigger}",
        patient_id=patient_id,
        observed_at=observed_at,
        code=code,
        value=1.0,
        unit="",
        encounter=(_field(pv1, 19) or None),
        ward=ward,
        where=where,
    )
    result.add(outcome)


def _merge_refusal(message: Any, trigger: str, where: str) -> Rejected:
    """The ``adt_merge`` dead letter of a merge (``ADT_MERGES``): what becomes of the stay of the id
    given up (MRG-1), said without either id; a merge that keeps the id (MRG-1 the same record
    number as PID-3: accounts or visits merged) changes nothing Vigil keys on, and is ignored as
    the other ADT triggers are."""
    segments = list(message)
    pid = next((s for s in segments if _name(s) == "PID"), None)
    mrg = next((s for s in segments if _name(s) == "MRG"), None)
    given_up = _patient_id(mrg, 1) if mrg is not None else ""
    kept = _patient_id(pid) if pid is not None else ""
    what = f"{where}ADT^{trigger} (patient merge)"
    if not given_up:
        return Rejected("adt_merge", f"{what} without MRG-1 (the id given up): which stay it orphans is unknown")
    if given_up == kept:
        return Rejected("adt_not_discharge", f"{what} keeps the patient's id (MRG-1 is PID-3): nothing to end")
    return Rejected(
        "adt_merge",
        f"{what}: not applied; a stay open under the id given up (MRG-1) stays open, its alert too, until "
        "the state's TTL (resolve it by hand); the id kept (PID-3) is scored from its own hour 0",
    )


def _decode_obx(
    obx: Any,
    index: int,
    order: _Order,
    result: DecodeResult,
    *,
    where: str,
    key: str,
    patient_id: str,
    ward: str | None,
    encounter: str | None,
    sender_tz: tzinfo,
) -> PatientEvent | Rejected:
    set_id = _field(obx, 1) or str(index)
    where = f"{where}OBX[{index}] "
    status = _field(obx, 11).upper()
    if status in RETRACTED_RESULT_STATUSES:
        withdrawn = "deleted" if status == "D" else "wrong"
        return Rejected("retracted", f"{where}OBX-11 result status {status!r} ({withdrawn}): a result withdrawn")
    if status not in ACCEPTED_RESULT_STATUSES:
        return Rejected("not_final", f"{where}OBX-11 result status {status!r} is not F, C, P or R")
    identifier, coding_system = _field(obx, 3, component=1), _field(obx, 3, component=3)
    alt_identifier, alt_system = _field(obx, 3, component=4), _field(obx, 3, component=6)
    code = (
        canonical_for_coding(coding_system, identifier)
        or canonical_for_coding(alt_system, alt_identifier)
        or (canonical_for_local(identifier) if coding_system.upper() not in ("LN", "MDC") else None)
    )
    # 2708-6 is SpO2 unless its order is a blood gas panel: the one rule of both codecs
    codings = [(coding_system, identifier), (alt_system, alt_identifier)]
    code = saturation_code(code, codings, blood_gas=order.blood_gas)
    if code is None:
        unknown = f"{coding_system}|{identifier}" if identifier else "no-code"
        result.unknown_codes[unknown] += 1
        return Rejected("unmapped_code", f"{where}no mapping for OBX-3 {unknown}")
    value = _obx_value(obx, code)
    if isinstance(value, Rejected):
        return Rejected(value.reason, where + value.detail)
    observed_at = _timestamp(_field(obx, 14) or order.time, sender_tz)
    if isinstance(observed_at, Rejected):
        return Rejected(observed_at.reason, where + observed_at.detail)
    return canonical_event(
        source=SOURCE,
        key=key,
        part=f"obx[{set_id}]:{index}:{code}",
        patient_id=patient_id,
        observed_at=observed_at,
        code=code,
        value=value,
        unit=_units(obx),
        encounter=encounter,
        ward=ward,
        where=where,
    )


def _obx_value(obx: Any, code: str) -> float | Rejected:
    value_type = _field(obx, 2).upper()
    if (repeated := _repetitions(obx, 5)) > 1:
        # 80~120: one OBX is one value; keeping the first would score a number the sender did not mean
        return Rejected("no_value", f"OBX-5 of type {value_type or '?'} repeats ({repeated} values), not one value")
    first = _field(obx, 5, component=1)
    if value_type == "SN":
        # structured numeric: comparator ^ num1 ^ separator/suffix ^ num2; a range or ratio is not one value
        comparator, separator, second = first, _field(obx, 5, component=3), _field(obx, 5, component=4)
        if separator or second:
            return Rejected("no_value", "OBX-5 SN is a range or ratio, not a single value")
        first = f"{comparator}{_field(obx, 5, component=2)}"
    if not first.strip():
        return Rejected("no_value", "OBX-5 is empty")
    table = ACVPU_VALUES if code == "ACVPU" else YES_NO_VALUES if code == "SupplementalO2" else None
    if table is not None:
        for word in (first, _field(obx, 5, component=2)):
            if word.strip().upper() in table:
                return table[word.strip().upper()]
    match = _NUMBER.match(first)
    if match is None:
        return Rejected("no_value", f"OBX-5 of type {value_type or '?'} is not a number")
    # a comparator (<0.5, >15) keeps its bound, as for FHIR valueQuantity.comparator
    return float(match.group(2))


def _units(obx: Any) -> str:
    """OBX-6 as a unit spelling: UCUM OBX-6.1, or for an MDC unit (``262688^MDC_DIM_PERCENT^MDC``) its
    dimension name OBX-6.2, aliased in ``loinc.UNIT_ALIASES``. A number is an MDC code only when OBX-6.3
    says MDC (or OBX-6.2 names an MDC dimension, a gateway that leaves OBX-6.3 out): UCUM ``1`` is
    the unit of a fraction (SpO2 0.95), and was read as an MDC code without a name, then refused."""
    identifier, text, system = (_field(obx, 6, component=c) for c in (1, 2, 3))
    if system.upper() == "MDC" or (identifier.isdigit() and text.upper().startswith("MDC_")):
        return text
    return identifier or text


def _timestamp(value: str, sender_tz: tzinfo) -> datetime | Rejected:
    value = value.strip()
    if not value:
        return Rejected("missing_time", "neither OBX-14 nor OBR-7 has a time")
    match = _TIMESTAMP.match(value)
    if match is None:
        # date-only or hour-only precision cannot place a value in an hourly window reliably
        return Rejected("missing_time", "timestamp is not YYYYMMDDHHMM[SS[.S]][+/-ZZZZ]")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    tz = _offset(offset) if offset else sender_tz
    if tz is None:
        return Rejected("missing_time", "timestamp has an invalid offset")
    try:
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")[:6]),
            tzinfo=tz,
        )
    except ValueError:
        return Rejected("missing_time", "timestamp is not a valid calendar time")


def _offset(value: str) -> tzinfo | None:
    match = _OFFSET.search(value.strip()) if value else None
    if match is None:
        return None
    sign, hours, minutes = match.groups()
    if int(hours) > 14 or int(minutes) > 59:
        return None
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    return timezone(-delta if sign == "-" else delta)


def _patient_id(pid: Any, field_number: int = 3) -> str:
    """PID-3 (or MRG-1, the id a merge gives up: ``field_number`` 1): the repetition whose identifier
    type (CX.5) is ``MR`` (record number), else the first."""
    repetitions = _repetitions(pid, field_number)
    chosen = 1
    for number in range(1, repetitions + 1):
        if _field(pid, field_number, repetition=number, component=5).upper() == "MR":
            chosen = number
            break
    return _field(pid, field_number, repetition=chosen, component=1).strip()


def _repetitions(segment: Any, field_number: int) -> int:
    try:
        return max(1, len(segment(field_number))) if field_number < len(segment) else 1
    except Exception:
        return 1


def _name(segment: Any) -> str:
    try:
        return str(segment[0][0]) if isinstance(segment[0], list) else str(segment[0])
    except Exception:
        return ""


def _field(segment: Any, field_number: int, *, repetition: int = 1, component: int = 1) -> str:
    """One component as text, '' when absent: ``extract_field`` raises IndexError on short paths."""
    if segment is None:
        return ""
    try:
        value = segment.extract_field(
            field_num=field_number, repeat_num=repetition, component_num=component, subcomponent_num=1
        )
    except (IndexError, KeyError, TypeError, ValueError, AttributeError):
        return ""
    return str(value) if value is not None else ""
