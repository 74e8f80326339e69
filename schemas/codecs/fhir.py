"""FHIR R4 JSON -> Vigil events: ``Observation``, ``MedicationAdministration``, ``Procedure``, a
``finished`` ``Encounter`` (the stay's end: a ``discharge`` event, ``models.stays``), an
``in-progress`` one whose newest move left a monitored unit for a unit neither monitored nor away
(a ``transfer_out``, where the site names its units: ``care_units.Units``), a ``cancelled`` or
``entered-in-error`` inpatient one (a ``cancel_admit``, as an ADT^A11), an ``in-progress`` one
whose ``statusHistory`` says it was ``finished`` (reopened: a ``cancel_discharge``, as an ADT^A13;
its newest move out of the monitored units after that, a ``transfer_out``) and ``Bundle``
(transaction, batch, collection, searchset, message, history: only each resource's newest version,
``fhir_history``) of those. A result whose Bundle
carries its Encounter is placed in the unit that Encounter had the patient in (``fhir_places``):
its ward, and, where the site names its units, ignored when it is none of them. The Encounter of a
``message`` Bundle whose event is an ADT cancel (``A13``, ``A12``, ``A11``: ``fhir_message``) is that
cancel: a ``cancel_discharge``, ``cancel_transfer`` or ``cancel_admit``.

Errors are data (Bytewax style): ``decode_fhir`` never raises; every input ends up as events,
``Rejected`` items (dead letters, stable ``reason``) or ``ignored`` items. Rules (status, time zone,
units, patient) are documented in ``docs/interop.md``; the code tables live in ``schemas.codecs.loinc``.

Models: fhir.resources 8 ships R5 as its default package and FHIR 4.3 (R4B) as ``fhir.resources.R4B``;
there is no separate R4 package any more. R4B is the R4 wire format for every element used here
(Observation, Bundle, MedicationAdministration, Procedure, RiskAssessment, OperationOutcome), so
R4 payloads validate against it unchanged.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from codecs import BOM_UTF8
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

import pydantic_core
from fhir.resources.R4B.bundle import Bundle, BundleEntry
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.procedure import Procedure
from pydantic import ValidationError

from vigil.schemas.codecs.care_units import NO_UNITS, Units
from vigil.schemas.codecs.fhir_history import entry_version, history_ignores
from vigil.schemas.codecs.fhir_message import cancel_event
from vigil.schemas.codecs.fhir_out import operation_outcome
from vigil.schemas.codecs.fhir_places import (
    BundleIndex,
    instant_key,
    places_of,
    reference_id,
    unit_at,
    unit_name,
    ward_of,
    within_a_unit,
)
from vigil.schemas.codecs.loinc import (
    ACVPU_VALUES,
    ARTERIAL_BLOOD_SPECIMENS,
    SNOMED_PROCEDURE_TO_CANONICAL,
    SNOMED_SYSTEM,
    UCUM_SYSTEM,
    YES_NO_VALUES,
    DecodeResult,
    age_at,
    canonical_event,
    canonical_for_coding,
    date_of_birth,
    demographic_event,
    first_measurement,
    gender_value,
    is_blood_gas_panel,
    is_panel,
    saturation_code,
    treatment_for_medication,
    treatment_for_texts,
)
from vigil.schemas.codes import CANCEL_ADMIT, CANCEL_DISCHARGE, DISCHARGE
from vigil.schemas.deadletter import Rejected, error_location
from vigil.schemas.events import PatientEvent, point_of_care

# The web app answers POST /fhir with operation_outcome(result.rejected): one import for both.
__all__ = ["DecodeResult", "decode_fhir", "operation_outcome"]

SOURCE: Final = "fhir"

# A single Observation is ~2 KiB; a busy searchset page a few MiB. Beyond this it is a bulk export
# that belongs in a batch job, not on the stream (and a 1 GiB body must not stall a worker).
MAX_PAYLOAD_BYTES: Final = 8 * 1024 * 1024
MAX_BUNDLE_ENTRIES: Final = 10_000

# Observation.status (R4 ObservationStatus). ``preliminary`` is accepted: bedside device readings are
# preliminary until a nurse validates them, and an early-warning score must not wait for that; the
# later ``final``/``amended`` version carries a new meta.versionId, hence a new event id.
# ``entered-in-error`` (of any resource here) is dead-lettered ``retracted``, the others ``not_final``.
OBSERVATION_STATUSES: Final = frozenset({"final", "amended", "corrected", "preliminary"})
# An Encounter that goes on, whose location history may hold a move out of the monitored units
# (``_decode_encounter_move``, where the site names them); onleave: the patient left for a while
MOVING_ENCOUNTER_STATUSES: Final = frozenset({"in-progress", "onleave"})
# An Encounter that never was: entered in error, or ended before it began (not admitted after all):
# a ``cancel_admit`` (HL7v2 ADT^A11) when it is of a class a stay can be; an outpatient visit
# cancelled is nobody's stay (v3 ActEncounterCode: inpatient, acute, non-acute, short stay,
# observation, emergency)
CANCELLED_ENCOUNTER_STATUSES: Final = frozenset({"cancelled", "entered-in-error"})
STAY_CLASSES: Final = frozenset({"IMP", "ACUTE", "NONAC", "SS", "OBSENC", "EMER"})
# MedicationAdministration.status: ``stopped`` means started then stopped, i.e. the drug was given.
ADMINISTRATION_STATUSES: Final = frozenset({"completed", "in-progress", "stopped"})
PROCEDURE_STATUSES: Final = frozenset({"completed", "in-progress"})

# Resources that give context to the mapped ones (subjects, encounters, the medication itself) or
# carry no clinical measurement: ignored, not dead-lettered.
CONTEXT_RESOURCES: Final = frozenset(
    {
        "Patient",
        "Encounter",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Location",
        "Device",
        "DeviceMetric",
        "Medication",
        "Specimen",
        "Provenance",
        "MessageHeader",
        "OperationOutcome",
    }
)


# Patient.birthDate (FHIR ``date``) to the day: a year or a month alone would move the age by up to a year
_BIRTH_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


@dataclass
class Measurements:
    """The Bundle's measurements that intake publishes, by patient, noted as its entries are decoded
    (``decode_bundle_entry``): a Patient's age and sex are read beside them only (``_decode_patient``),
    at the earliest one's time. So both decoders, whole and streamed, decode a Bundle's Patient
    entries after its other entries (``is_patient_entry``), whichever comes first. A measurement: a
    vital sign or a lab whose value passes the intake rules (``loinc.first_measurement``), read from
    a unit the site scores, its patient the one its subject resolves to: beside an ED GCS or an
    antibiotic alone, the age fixed hour 0 hours before the ICU's first vital signs until bundle
    2.7.0 (``models.window``), and beside an HR of 900/min alone, it and the sex alone opened a stay that
    was scored. A Patient resource carries no time of its own."""

    # patient id -> the earliest measurement and its time as sent (the age is counted on its own date)
    first: dict[str, tuple[PatientEvent, datetime]] = field(default_factory=dict)

    def note(self, events: list[PatientEvent], resource: dict[str, Any]) -> None:
        """One decoded entry's events (``resource``: the entry's resource, whose time keeps its offset)."""
        sent = _raw_effective_time(resource)
        for patient_id in dict.fromkeys(e.patient_id for e in events):
            measured = first_measurement(e for e in events if e.patient_id == patient_id)
            if measured is None:
                continue
            known = self.first.get(patient_id)
            if known is None or measured.observed_at < known[0].observed_at:
                at = sent if sent is not None and sent == measured.observed_at else measured.observed_at
                self.first[patient_id] = (measured, at)


def is_patient_entry(entry: Any) -> bool:
    """Whether a Bundle entry holds a Patient: decoded once the Bundle's other entries are
    (``Measurements``)."""
    resource = entry.get("resource") if isinstance(entry, dict) else None
    return isinstance(resource, dict) and resource.get("resourceType") == "Patient"


def _raw_effective_time(resource: dict[str, Any]) -> datetime | None:
    """An Observation's time as ``_effective_time`` reads it (the first given of effectiveDateTime,
    effectiveInstant, effectivePeriod.start), from its JSON; None where that would refuse it."""
    period = resource.get("effectivePeriod")
    candidates = [
        resource.get("effectiveDateTime"),
        resource.get("effectiveInstant"),
        period.get("start") if isinstance(period, dict) else None,
    ]
    value = next((c for c in candidates if c is not None), None)
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


class _Context:
    """Per-payload state: the result being built, the Bundle's fullUrl -> resource index, the
    site's units (which results are scored, which Encounter moves end a stay) and the Bundle's
    measurements, which a Patient's age and sex are read beside."""

    def __init__(self, units: Units = NO_UNITS, results: Measurements | None = None) -> None:
        self.result = DecodeResult()
        self.by_full_url = BundleIndex()
        self.units = units
        self.results = results if results is not None else Measurements()

    def reject(self, reason: str, detail: str) -> None:
        self.result.rejected.append(Rejected(reason, detail))

    def ignore(self, reason: str, detail: str) -> None:
        self.result.ignored.append(Rejected(reason, detail))

    def add(self, outcome: PatientEvent | Rejected) -> None:
        self.result.add(outcome)


def decode_fhir(payload: bytes | bytearray | memoryview | str, units: Units = NO_UNITS) -> DecodeResult:
    """Decode one FHIR R4 JSON resource (an Observation, a supported resource or a Bundle of them);
    ``units``: the site's monitored and away units (none by default: no Encounter move is read)."""
    ctx = _Context(units)
    try:
        _decode_payload(payload, ctx)
    except Exception as exc:  # the last line of defence: a codec bug must dead-letter, not crash a worker
        ctx.reject("internal", f"decoder error {type(exc).__name__}")
    return ctx.result


def _decode_payload(payload: bytes | bytearray | memoryview | str, ctx: _Context) -> None:
    if isinstance(payload, str):
        payload = payload.encode("utf-8", errors="surrogatepass")
    if not isinstance(payload, bytes | bytearray | memoryview):
        ctx.reject("invalid_json", f"payload is {type(payload).__name__}, not bytes")
        return
    too_large = payload_size_problem(len(payload))
    if too_large is not None:
        ctx.result.rejected.append(too_large)
        return
    try:
        # a UTF-8 byte-order mark before the JSON (Windows editors and exports write one) is
        # skipped, as RFC 8259 section 8.1 lets a parser do: with it the whole payload was invalid_json
        data = pydantic_core.from_json(bytes(payload).removeprefix(BOM_UTF8))
    except ValueError as exc:
        ctx.reject("invalid_json", _first_line(str(exc)))
        return
    if not isinstance(data, dict):
        ctx.reject("schema", f"top-level JSON is {type(data).__name__}, not a FHIR resource object")
        return
    resource_type = data.get("resourceType")
    if not isinstance(resource_type, str):
        ctx.reject("schema", "no resourceType")
        return
    if resource_type == "Bundle":
        _decode_bundle(data, ctx)
    else:
        _decode_resource(data, ctx, where="", full_url=None)


def payload_size_problem(size: int) -> Rejected | None:
    """Why a payload of ``size`` bytes (as sent, a byte-order mark included) is refused whole, or
    None: the one limit of every FHIR decoder path, whole (``decode_fhir``: ``vigil convert``, the
    FHIR examples) or streamed (``fhir_stream``: the FHIR agent, ``POST /fhir``)."""
    if size > MAX_PAYLOAD_BYTES:
        return Rejected("too_large", f"payload is {size} bytes (limit {MAX_PAYLOAD_BYTES})")
    return None


def _decode_bundle(bundle: dict[str, Any], ctx: _Context) -> None:
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        ctx.reject("schema", "Bundle.entry is not a list")
        return
    if len(entries) > MAX_BUNDLE_ENTRIES:
        ctx.reject("too_large", f"Bundle has {len(entries)} entries (limit {MAX_BUNDLE_ENTRIES})")
        return
    # Validate the Bundle shell (type, links, requests) once, and each entry's resource on its own:
    # one bad Observation in a 200-entry searchset must dead-letter alone, not take 199 good ones with it.
    shell = {**bundle, "entry": [_without_resource(e) for e in entries]}
    try:
        Bundle.model_validate(shell)
    except ValidationError as exc:
        ctx.reject("schema", "Bundle: " + _validation_detail(exc))
        return
    if not entries:
        ctx.ignore("empty_bundle", f"Bundle ({bundle.get('type')}) has no entries")
        return
    unread = history_ignores([entry_version(e) for e in entries]) if bundle.get("type") == "history" else {}
    for index, entry in enumerate(entries):
        resource = entry.get("resource")
        full_url = entry.get("fullUrl")
        # an older version of a history Bundle shares its fullUrl with the newest: only the newest resolves
        if isinstance(resource, dict) and isinstance(full_url, str) and index not in unread:
            ctx.by_full_url[full_url] = resource
    first = entries[0].get("resource") if isinstance(entries[0], dict) else None
    ctx.by_full_url.message = cancel_event(bundle, first, ctx.by_full_url)
    results = Measurements()
    decoded: dict[int, DecodeResult] = {}
    # the Patients last (``Measurements``), the outcomes then in the Bundle's order
    for index in sorted(range(len(entries)), key=lambda i: is_patient_entry(entries[i])):
        if index not in unread:
            decoded[index] = decode_bundle_entry(entries[index], index, ctx.by_full_url, ctx.units, results)
    for index in range(len(entries)):
        if index in unread:
            ctx.result.ignored.append(unread[index])
        else:
            ctx.result.extend(decoded[index])


def bundle_shell_problem(shell: dict[str, Any]) -> Rejected | None:
    """The Bundle without its entries (type, links, total): valid, or why not."""
    try:
        Bundle.model_validate({k: v for k, v in shell.items() if k != "entry"})
    except ValidationError as exc:
        return Rejected("schema", "Bundle: " + _validation_detail(exc))
    return None


def bundle_entry_problem(entry: Any, index: int) -> Rejected | None:
    """One entry's envelope (fullUrl, request, response, search), without its resource."""
    if not isinstance(entry, dict):
        return Rejected("schema", f"entry[{index}] is not an object")
    try:
        BundleEntry.model_validate(_without_resource(entry))
    except ValidationError as exc:
        return Rejected("schema", f"entry[{index}] " + _validation_detail(exc))
    return None


def decode_bundle_entry(
    entry: Any, index: int, by_full_url: BundleIndex, units: Units = NO_UNITS, results: Measurements | None = None
) -> DecodeResult:
    """Decode one Bundle entry; ``by_full_url`` resolves Bundle-local references (Patient,
    Medication, Encounter and Location entries), ``results`` holds the Bundle's measurements decoded
    so far and notes this entry's (a Patient's age and sex are read beside them: its entries are
    decoded last, ``is_patient_entry``). Used for whole payloads here and, one entry at a time, by
    the streaming decoder (``codecs.fhir_stream``) so a 10,000-entry Bundle is never held whole."""
    ctx = _Context(units, results)
    ctx.by_full_url = by_full_url
    where = f"entry[{index}] "
    resource = entry.get("resource") if isinstance(entry, dict) else None
    if not isinstance(resource, dict):
        # transaction DELETE, history tombstones, responses: nothing to measure
        ctx.ignore("no_resource", f"{where}has no resource")
        return ctx.result
    full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
    try:
        _decode_resource(resource, ctx, where=where, full_url=full_url)
    except Exception as exc:  # isolate a codec bug to its entry
        ctx.result.events.clear()
        ctx.reject("internal", f"{where}decoder error {type(exc).__name__}")
    ctx.results.note(ctx.result.events, resource)
    return ctx.result


_Handler = Callable[[Any, dict[str, Any], _Context, str, str], None]


def _decode_resource(resource: dict[str, Any], ctx: _Context, *, where: str, full_url: str | None) -> None:
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str):
        ctx.reject("schema", f"{where}no resourceType")
        return
    if resource_type == "Patient":
        _decode_patient(resource, ctx, where, full_url)
        return
    status = resource.get("status")  # any JSON value until the resource is checked
    moving = (  # where the site names its units, an Encounter with a location history is read (and checked)
        ctx.units.monitored and isinstance(status, str) and status in MOVING_ENCOUNTER_STATUSES
    ) and bool(resource.get("location"))
    reopened = resource_type == "Encounter" and was_finished(resource)
    cancel = ctx.by_full_url.message
    if (
        cancel is not None
        and resource_type == "Encounter"
        and cancel.concerns(full_url, resource_type, resource.get("id"))
    ):
        entry: tuple[Any, _Handler] | None = (Encounter, _decode_encounter_cancel)  # what the message says happened
    elif (
        resource_type == "Encounter"
        and status not in ("finished", *CANCELLED_ENCOUNTER_STATUSES)
        and not moving
        and not reopened
    ):
        # an Encounter that goes on is context (an Observation's encounter); its end is an event, and
        # where the site names its units, a move out of them (``_decode_encounter_move``)
        ctx.ignore("context_resource", f"{where}Encounter ({str(resource.get('status'))[:20]})")
        return
    else:
        entry = _HANDLERS.get(resource_type)
    if entry is None:
        if resource_type in CONTEXT_RESOURCES:
            ctx.ignore("context_resource", f"{where}{resource_type}")
        else:
            ctx.reject("unsupported_resource", f"{where}{resource_type} is not mapped")
        return
    model, handler = entry
    label = f"{where}{resource_type}/{resource.get('id', '')}".rstrip("/")
    try:
        parsed = model.model_validate(resource)
    except ValidationError as exc:
        ctx.reject(_validation_reason(exc), f"{label}: {_validation_detail(exc)}")
        return
    handler(parsed, resource, ctx, label + " ", _resource_key(resource_type, parsed, resource, full_url))


# --- Observation ------------------------------------------------------------------------------


def _decode_observation(obs: Observation, raw: dict[str, Any], ctx: _Context, where: str, key: str) -> None:
    times = _time_candidates(obs.effectiveDateTime, obs.effectiveInstant, obs.effectivePeriod)
    care_unit = _point_of_care(ctx, obs.subject, obs.encounter, times, where)
    if care_unit is None:
        return
    if obs.status not in OBSERVATION_STATUSES:
        ctx.add(_status_refused(obs.status, OBSERVATION_STATUSES, where))
        return
    codings = _codings(obs.code)
    blood_gas = _blood_gas(obs, raw, ctx)
    code = _saturation(_first_mapped(codings), codings, blood_gas)
    panel = any(is_panel(c.system, c.code) for c in codings)
    value_present = _has_value(obs)
    components = list(obs.component or [])

    # (part, canonical code, value holder, its JSON, location) for every measurement it carries
    measured: list[tuple[str, str, Any, Any, str]] = []
    listed = raw.get("component")
    raw_components: list[Any] = listed if isinstance(listed, list) else []
    if code is not None and (value_present or not components):
        measured.append(("value", code, obs, raw, where))
        # components of a mapped value (GCS motor/verbal/eyes) are details of it: only mapped ones count
        for index, component in enumerate(components):
            component_codings = _codings(component.code)
            component_code = _saturation(_first_mapped(component_codings), component_codings, blood_gas)
            if component_code is not None:
                measured.append(
                    (
                        f"component[{index}]",
                        component_code,
                        component,
                        _item(raw_components, index),
                        f"{where}component[{index}] ",
                    )
                )
    elif components:
        if code is None and value_present and not panel:
            _unmapped(ctx, codings, where)
        for index, component in enumerate(components):
            component_where = f"{where}component[{index}] "
            component_codings = _codings(component.code)
            component_code = _saturation(_first_mapped(component_codings), component_codings, blood_gas)
            if component_code is None:
                _unmapped(ctx, component_codings, component_where)
            else:
                raw_component = _item(raw_components, index)
                measured.append((f"component[{index}]", component_code, component, raw_component, component_where))
    elif obs.hasMember and not value_present:
        # a grouping panel (vital-signs panel 85353-1): its members arrive as their own Observations
        ctx.ignore("panel", f"{where}groups {len(obs.hasMember)} member observations")
        return
    else:
        _unmapped(ctx, codings, where)
        return
    if not measured:
        return

    patient_id = _patient_id(obs.subject, ctx, where)
    observed_at = _effective_time(obs.effectiveDateTime, obs.effectiveInstant, obs.effectivePeriod, ctx, where)
    if patient_id is None or observed_at is None:
        return
    encounter, ward = _encounter_id(ctx, obs.encounter), ward_of(care_unit)
    for part, canonical, holder, raw_holder, location in measured:
        value = _json_number_problem(raw_holder) or _observation_value(holder, canonical)
        if isinstance(value, Rejected):
            ctx.reject(value.reason, location + value.detail)
            continue
        number, unit = value
        ctx.add(
            canonical_event(
                source=SOURCE,
                key=key,
                part=f"{part}:{canonical}",
                patient_id=patient_id,
                observed_at=observed_at,
                code=canonical,
                value=number,
                unit=unit,
                encounter=encounter,
                ward=ward,
                where=location,
            )
        )


def _status_refused(status: Any, accepted: frozenset[str], where: str) -> Rejected:
    """A status outside ``accepted``: ``entered-in-error`` withdraws what was sent before (a value on
    the wrong patient, a charting error) -> ``retracted``, a reason of its own so that an operator
    sees it (the value already scored stays in the window: docs/interop.md); any other -> ``not_final``."""
    if status == "entered-in-error":
        return Rejected("retracted", f"{where}status 'entered-in-error': a result withdrawn")
    return Rejected("not_final", f"{where}status {status!r} is not one of {sorted(accepted)}")


def _blood_gas(obs: Observation, raw: dict[str, Any], ctx: _Context) -> bool:
    """Whether the Observation says positively that it is a laboratory's blood gas, the only place
    where LOINC 2708-6 is the model's SaO2 (``loinc.saturation_code``): its category ``laboratory``
    (R4 observation-category), its own code a blood gas panel (its components are the gas's
    results), or its specimen arterial blood (a Specimen contained or in the Bundle). The category
    ``vital-signs`` (which the vital-signs profile requires of SpO2) leaves it the bedside's whatever
    else it says; so does nothing: monitors send 2708-6 without a category."""
    categories = {c.code for concept in obs.category or [] for c in concept.coding or []}
    if "vital-signs" in categories:
        return False
    return (
        "laboratory" in categories
        or any(is_blood_gas_panel(c.system, c.code) for c in _codings(obs.code))
        or _arterial_specimen(raw, ctx)
    )


def _arterial_specimen(raw: dict[str, Any], ctx: _Context) -> bool:
    """Whether the Observation's specimen is arterial blood (``ARTERIAL_BLOOD_SPECIMENS``): a Specimen
    it contains (``#id``) or the Bundle carries; one Vigil cannot read says nothing."""
    specimen = raw.get("specimen")
    reference = specimen.get("reference") if isinstance(specimen, dict) else None
    if not isinstance(reference, str) or not reference:
        return False
    found = _contained(raw, reference[1:]) if reference.startswith("#") else ctx.by_full_url.resolve(reference)
    if not isinstance(found, dict) or found.get("resourceType") != "Specimen":
        return False
    kind = found.get("type")
    codings = kind.get("coding") if isinstance(kind, dict) else None
    return isinstance(codings, list) and any(
        isinstance(c, dict) and (c.get("system"), c.get("code")) in ARTERIAL_BLOOD_SPECIMENS for c in codings
    )


def _contained(raw: dict[str, Any], resource_id: str) -> dict[str, Any] | None:
    """The resource of ``raw.contained`` a local reference (``#id``) names."""
    contained = raw.get("contained")
    resources = contained if isinstance(contained, list) else []
    return next((r for r in resources if isinstance(r, dict) and r.get("id") == resource_id), None)


def _saturation(code: str | None, codings: list[Any], blood_gas: bool) -> str | None:
    """``loinc.saturation_code`` over a CodeableConcept's codings: 2708-6 is SpO2 (``O2Sat``) unless
    the Observation is positively a blood gas (``_blood_gas``), as in HL7v2."""
    return saturation_code(code, [(c.system, c.code) for c in codings], blood_gas=blood_gas)


def _json_number_problem(raw: Any) -> Rejected | None:
    """A value that JSON does not give as a number: fhir.resources reads ``"80"`` and ``true`` as
    numbers, Vigil JSON intake does not (``true`` is not a heart rate of 1, nor ACVPU "confusion")."""
    if not isinstance(raw, dict):
        return None
    quantity = raw.get("valueQuantity")
    if isinstance(quantity, dict) and "value" in quantity and not _is_json_number(quantity["value"], float):
        return Rejected("schema", f"valueQuantity.value is a JSON {_json_type(quantity['value'])}, not a number")
    if "valueInteger" in raw and not _is_json_number(raw["valueInteger"], int):
        return Rejected("schema", f"valueInteger is a JSON {_json_type(raw['valueInteger'])}, not an integer")
    return None


def _item(items: list[Any], index: int) -> Any:
    return items[index] if index < len(items) else None


def _is_json_number(value: Any, kind: type) -> bool:
    return not isinstance(value, bool) and isinstance(value, int if kind is int else (int, float))


def _json_type(value: Any) -> str:
    return {bool: "boolean", str: "string", dict: "object", list: "array", float: "number"}.get(type(value), "value")


def _observation_value(holder: Any, canonical: str) -> tuple[float, str] | Rejected:
    """The numeric value and its unit of an Observation or an Observation.component."""
    quantity = holder.valueQuantity
    if quantity is not None:
        if quantity.value is None:
            return Rejected("no_value", "valueQuantity has no value")
        # ``comparator`` (<, <=, >, >=): the bound is used. ">15 mmol/L" lactate must still alarm;
        # "<0.5" is clinically the same as 0.5 for every score Vigil computes.
        return _number(quantity.value), _quantity_unit(quantity.system, quantity.code, quantity.unit)
    if holder.valueInteger is not None:
        return float(holder.valueInteger), ""
    if holder.valueBoolean is not None and canonical in ("SupplementalO2", "HypercapnicRespFailure"):
        return (1.0 if holder.valueBoolean else 0.0), ""
    words = _value_words(holder)
    table = ACVPU_VALUES if canonical == "ACVPU" else YES_NO_VALUES if canonical == "SupplementalO2" else {}
    for word in words:
        if word.strip().upper() in table:
            return table[word.strip().upper()], ""
    reason = "no_value"
    if holder.dataAbsentReason is not None:
        return Rejected(reason, "dataAbsentReason given instead of a value")
    return Rejected(reason, f"no numeric value for {canonical}")


def _value_words(holder: Any) -> list[str]:
    words: list[str] = []
    if getattr(holder, "valueString", None):
        words.append(holder.valueString)
    concept = getattr(holder, "valueCodeableConcept", None)
    if concept is not None:
        words.extend(c.code for c in concept.coding or [] if c.code)
        words.extend(c.display for c in concept.coding or [] if c.display)
        if concept.text:
            words.append(concept.text)
    return words


def _has_value(obs: Observation) -> bool:
    return any(
        getattr(obs, name) is not None
        for name in ("valueQuantity", "valueInteger", "valueBoolean", "valueString", "valueCodeableConcept")
    )


# --- MedicationAdministration and Procedure (treatments) ---------------------------------------


def _decode_administration(
    admin: MedicationAdministration, raw: dict[str, Any], ctx: _Context, where: str, key: str
) -> None:
    times = _time_candidates(admin.effectiveDateTime, None, admin.effectivePeriod)
    care_unit = _point_of_care(ctx, admin.subject, admin.context, times, where)
    if care_unit is None:
        return
    if admin.status not in ADMINISTRATION_STATUSES:
        ctx.add(_status_refused(admin.status, ADMINISTRATION_STATUSES, where))
        return
    concepts: list[Any] = []
    if admin.medicationCodeableConcept is not None:
        concepts.append(admin.medicationCodeableConcept)
    texts: list[str] = []
    reference = admin.medicationReference
    if reference is not None:
        if reference.reference and reference.reference.startswith("#"):
            for contained in admin.contained or []:
                code = getattr(contained, "code", None)
                if getattr(contained, "id", None) == reference.reference[1:] and code is not None:
                    concepts.append(code)
        elif reference.reference:
            medication = ctx.by_full_url.resolve(reference.reference)
            if medication and isinstance(medication.get("code"), dict):
                concepts.append(_LooseConcept(medication["code"]))
        if reference.display:
            texts.append(reference.display)
    treatment = None
    codings = [c for concept in concepts for c in (concept.coding or [])]
    for coding in codings:
        treatment = treatment_for_medication(coding.system, coding.code)
        if treatment:
            break
    if treatment is None:
        texts += [concept.text for concept in concepts if concept.text]
        texts += [c.display for c in codings if c.display]
        treatment = treatment_for_texts(texts)  # all at once: a drug in one wins over a fluid in another
    if treatment is None:
        if codings:
            _unmapped(ctx, codings, where)
        else:
            ctx.result.unknown_codes["medication-text"] += 1
            ctx.reject("unmapped_code", f"{where}medication not recognised (no code, text not in table)")
        return

    patient_id = _patient_id(admin.subject, ctx, where)
    observed_at = _effective_time(admin.effectiveDateTime, None, admin.effectivePeriod, ctx, where)
    if patient_id is None or observed_at is None:
        return
    dose = _administration_dose(admin, treatment)
    if isinstance(dose, Rejected):
        ctx.reject(dose.reason, where + dose.detail)
        return
    value, unit = dose
    ctx.add(
        canonical_event(
            source=SOURCE,
            key=key,
            part=treatment,
            patient_id=patient_id,
            observed_at=observed_at,
            code=treatment,
            value=value,
            unit=unit,
            encounter=_encounter_id(ctx, admin.context),
            ward=ward_of(care_unit),
            where=where,
        )
    )


def _administration_dose(admin: MedicationAdministration, treatment: str) -> tuple[float, str] | Rejected:
    if treatment == "antibiotic":
        return 1.0, ""
    dosage = admin.dosage
    if treatment == "crystalloid_ml":
        if dosage is not None and dosage.dose is not None and dosage.dose.value is not None:
            dose = dosage.dose
            return _number(dose.value), _quantity_unit(dose.system, dose.code, dose.unit)
        return Rejected("missing_dose", "crystalloid without dosage.dose (volume in mL or L)")
    # vasopressor: the infusion rate, canonical ug/kg/min
    if dosage is not None and dosage.rateQuantity is not None and dosage.rateQuantity.value is not None:
        rate = dosage.rateQuantity
        return _number(rate.value), _quantity_unit(rate.system, rate.code, rate.unit)
    if dosage is not None and dosage.rateRatio is not None:
        numerator, denominator = dosage.rateRatio.numerator, dosage.rateRatio.denominator
        if numerator is not None and numerator.value is not None:
            per = 1.0
            denominator_unit = "min"
            if denominator is not None:
                per = _number(denominator.value) if denominator.value is not None else 1.0
                denominator_unit = _quantity_unit(denominator.system, denominator.code, denominator.unit) or "min"
            if per > 0:
                numerator_unit = _quantity_unit(numerator.system, numerator.code, numerator.unit)
                return _number(numerator.value) / per, f"{numerator_unit}/{denominator_unit}"
    return Rejected("missing_dose", "vasopressor without dosage.rateQuantity or rateRatio (ug/kg/min)")


def _decode_procedure(proc: Procedure, raw: dict[str, Any], ctx: _Context, where: str, key: str) -> None:
    times = _time_candidates(proc.performedDateTime, None, proc.performedPeriod)
    care_unit = _point_of_care(ctx, proc.subject, proc.encounter, times, where)
    if care_unit is None:
        return
    if proc.status not in PROCEDURE_STATUSES:
        ctx.add(_status_refused(proc.status, PROCEDURE_STATUSES, where))
        return
    codings = _codings(proc.code)
    canonical = next(
        (
            SNOMED_PROCEDURE_TO_CANONICAL[c.code]
            for c in codings
            if c.system == SNOMED_SYSTEM and c.code in SNOMED_PROCEDURE_TO_CANONICAL
        ),
        None,
    )
    if canonical is None:
        _unmapped(ctx, codings, where)
        return
    patient_id = _patient_id(proc.subject, ctx, where)
    observed_at = _effective_time(proc.performedDateTime, None, proc.performedPeriod, ctx, where)
    if patient_id is None or observed_at is None:
        return
    ctx.add(
        canonical_event(
            source=SOURCE,
            key=key,
            part=canonical,
            patient_id=patient_id,
            observed_at=observed_at,
            code=canonical,
            value=1.0,
            unit="",
            encounter=_encounter_id(ctx, proc.encounter),
            ward=ward_of(care_unit),
            where=where,
        )
    )


# --- Encounter (finished): the stay's end ------------------------------------------------------


def _decode_encounter(enc: Encounter, raw: dict[str, Any], ctx: _Context, where: str, key: str) -> None:
    """A ``finished`` Encounter -> one ``discharge`` at ``period.end``; its id is the encounter that
    Observations name in ``encounter`` (``Encounter/<id>``). One that goes on: ``_decode_encounter_move``,
    or, when its statusHistory lists a ``finished`` period, ``_decode_encounter_reopened`` unless its
    newest move left the monitored units after that (``_moved_out_since``); one that never was:
    ``_decode_encounter_cancelled``."""
    if enc.status in CANCELLED_ENCOUNTER_STATUSES:
        _decode_encounter_cancelled(enc, ctx, where, key)
        return
    reopened = _reopened_at(enc)
    if reopened is not None and not _moved_out_since(enc, reopened, ctx):
        _decode_encounter_reopened(enc, ctx, where, key)
        return
    if enc.status != "finished":
        _decode_encounter_move(enc, ctx, where, key)
        return
    patient_id = _patient_id(enc.subject, ctx, where)
    end = enc.period.end if enc.period is not None else None
    if end is None:
        ctx.reject("missing_time", f"{where}a finished Encounter without period.end")
        return
    problem = _time_problem(end)
    if problem is not None:
        ctx.reject("missing_time", f"{where}period.end {problem}")
        return
    if patient_id is None:
        return
    ctx.add(_stay_event(DISCHARGE, key, DISCHARGE, patient_id, end, enc, None, where))


def _decode_encounter_cancelled(enc: Encounter, ctx: _Context, where: str, key: str) -> None:
    """A ``cancelled`` or ``entered-in-error`` Encounter of a class a stay can be -> one ``cancel_admit``
    (HL7v2 ADT^A11): it ends the stay whose events name this Encounter, and no other
    (``models.stays``). Its time: ``meta.lastUpdated`` (when the server learnt it), else
    ``period.end``. Its id is the Encounter's, not its version's: the next version of the same
    cancelled Encounter is the same event again."""
    kind = enc.class_fhir.code if enc.class_fhir is not None else None
    if kind not in STAY_CLASSES:
        ctx.ignore("context_resource", f"{where}Encounter ({enc.status}, class {str(kind)[:12]}): not a stay")
        return
    times = [("meta.lastUpdated", enc.meta.lastUpdated if enc.meta is not None else None)]
    times.append(("period.end", enc.period.end if enc.period is not None else None))
    at = _first_time(times, ctx, where, f"a {enc.status} Encounter without meta.lastUpdated or period.end")
    patient_id = _patient_id(enc.subject, ctx, where) if at is not None else None
    if at is None or patient_id is None:
        return
    ctx.add(_stay_event(CANCEL_ADMIT, key.split("/_history/")[0], CANCEL_ADMIT, patient_id, at, enc, None, where))


def _decode_encounter_move(enc: Encounter, ctx: _Context, where: str, key: str) -> None:
    """An Encounter that goes on, where the site names its units: its newest move -> one
    ``transfer_out`` when it left a monitored unit (or an away unit) for one neither monitored nor
    away (``Units.leaves``), at the end of the location left; anything else is context, ignored.
    The move is the ``completed`` location with the latest ``period.end`` and the ``active`` one
    (the latest ``period.start`` if several); rooms and beds (``physicalType`` ``ro``, ``bd``) are
    places within a unit, listed beside it by some EHRs, and not read. Every update of the Encounter sends its location
    history again: the event's id is the move's (the Encounter and the time left, not its version),
    so the update after it is the same event again (a ``duplicate``, not a second end), and an
    update after the next move (ward to ward) names that move, which ends nothing. The Encounter's
    units are kept in ``encounters`` (by its patient and id), for results sent apart from it."""
    patient = _quiet_patient_id(ctx, enc.subject)  # whose: no dead letter here when it names none
    if enc.id and patient:
        ctx.result.encounters[patient, enc.id] = places_of(enc, ctx.units, ctx.by_full_url)
    move = _newest_move(enc, ctx)
    if move is None:
        ctx.ignore("context_resource", f"{where}Encounter ({enc.status}): no move from one location to another")
        return
    code, end, was = move
    if isinstance(code, Rejected):
        ctx.ignore("context_resource", f"{where}{code.detail}")
        return
    problem = _time_problem(end)
    if problem is not None or not isinstance(end, datetime):
        ctx.reject("missing_time", f"{where}the location left: period.end {problem}")
        return
    patient_id = _patient_id(enc.subject, ctx, where)
    if patient_id is None:
        return
    move_id = key.split("/_history/")[0]  # the move's identity: the same in every later version
    ward = ctx.units.stay_unit(was)
    ctx.add(_stay_event(code, move_id, f"{code}:{end.isoformat()}", patient_id, end, enc, ward, where))


def _newest_move(enc: Encounter, ctx: _Context) -> tuple[str | Rejected, Any, str] | None:
    """The Encounter's newest move (``_decode_encounter_move``): what it ends (``Units.leaves``), when
    the location left ended (its ``period.end``, unchecked) and the unit left; None when the
    Encounter lists no move (no ``active`` location, or no ``completed`` one with an end)."""
    places = [p for p in enc.location or [] if p.location is not None and not within_a_unit(p)]
    active = [p for p in places if p.status == "active"]
    left = [(p, p.period.end) for p in places if p.status == "completed" and p.period is not None and p.period.end]
    if not active or not left:
        return None
    current = max(active, key=lambda p: instant_key(p.period.start if p.period is not None else None))
    prior, end = max(left, key=lambda pair: instant_key(pair[1]))
    was, now = (unit_name(p.location, ctx.units, ctx.by_full_url) for p in (prior, current))
    return ctx.units.leaves(now, was, "Encounter.location"), end, was


def _moved_out_since(enc: Encounter, reopened: Any, ctx: _Context) -> bool:
    """Whether a reopened Encounter's newest move left the monitored units after its discharge was
    undone (the end of its newest ``finished`` period, else that period's start): that move is the
    news of this update, a ``transfer_out`` (``_decode_encounter_move``). The statusHistory stays
    in every later version of the Encounter, so read before the move, the patient's real transfer
    out days after a discharge undone was the old ``cancel_discharge`` again (a ``duplicate``): the
    stay never ended. A move before the undoing, or one that ends nothing, leaves the update the
    ``cancel_discharge`` it was (the same event again, or the undoing itself where its own update
    never came)."""
    move = _newest_move(enc, ctx) if ctx.units.monitored else None
    if move is None or isinstance(move[0], Rejected):
        return False
    undone = max(instant_key(reopened.start), instant_key(reopened.end))
    return instant_key(move[1]) > undone


def was_finished(raw: dict[str, Any]) -> bool:
    """An Encounter going on again (``in-progress``, ``onleave``) whose ``statusHistory`` lists a
    ``finished`` period: its discharge was undone (before the resource is checked)."""
    history, status = raw.get("statusHistory"), raw.get("status")  # any JSON values until checked
    return (
        isinstance(status, str)
        and status in MOVING_ENCOUNTER_STATUSES
        and isinstance(history, list)
        and any(isinstance(h, dict) and h.get("status") == "finished" for h in history)
    )


def _reopened_at(enc: Encounter) -> Any:
    """The newest ``finished`` period of an Encounter going on again (``was_finished``), else None."""
    if enc.status not in MOVING_ENCOUNTER_STATUSES:
        return None
    finished = [h.period for h in enc.statusHistory or [] if h.status == "finished" and h.period is not None]
    return max(finished, key=lambda period: instant_key(period.start), default=None)


def _decode_encounter_reopened(enc: Encounter, ctx: _Context, where: str, key: str) -> None:
    """An Encounter ``in-progress`` again whose ``statusHistory`` says it was ``finished``: its
    discharge was entered in error (or undone), as ADT^A13 says -> one ``cancel_discharge`` of this
    Encounter (``models.stays.resume`` gives back the stay its discharge ended, with its history).
    Its time: the end of the ``finished`` period (when the Encounter went on again), else
    ``meta.lastUpdated``. Its id is the Encounter's and that period's start (the discharge undone),
    not its version's: every later update of the Encounter is the same event again (a
    ``duplicate``); a second discharge, undone too, is another."""
    period = _reopened_at(enc)
    assert period is not None
    patient = _quiet_patient_id(ctx, enc.subject)
    places = places_of(enc, ctx.units, ctx.by_full_url)
    if enc.id and patient:
        ctx.result.encounters[patient, enc.id] = places
    times = [("the finished statusHistory's period.end", period.end)]
    times.append(("meta.lastUpdated", enc.meta.lastUpdated if enc.meta is not None else None))
    at = _first_time(
        times, ctx, where, "a reopened Encounter without the end of its finished period or meta.lastUpdated"
    )
    patient_id = _patient_id(enc.subject, ctx, where) if at is not None else None
    if at is None or patient_id is None:
        return
    undone = str(period.start or "")
    ward = ward_of(unit_at(places, None))
    event = _stay_event(
        CANCEL_DISCHARGE, key.split("/_history/")[0], f"reopened:{undone}", patient_id, at, enc, ward, where
    )
    ctx.add(event)


def _decode_encounter_cancel(enc: Encounter, raw: dict[str, Any], ctx: _Context, where: str, key: str) -> None:
    """The Encounter of a message Bundle whose event is ``A13``, ``A12`` or ``A11`` (``fhir_message``):
    one ``cancel_discharge`` (a ``cancel_admit`` for A11), or, where the site names its units, a
    ``cancel_transfer`` when the Encounter is back in a monitored unit (its ``active`` location; the
    location it lists as left, the cancelled destination: ``Units.code_of``, the ADT^A12 rule), else
    ignored as the A12 would be.
    Its time: the Provenance's ``occurredDateTime`` (EVN-6), else its ``recorded`` (EVN-2), else the
    Bundle's ``timestamp``; its ward: the unit the Encounter has the patient in."""
    message = ctx.by_full_url.message
    assert message is not None
    places = places_of(enc, ctx.units, ctx.by_full_url)
    now = unit_at(places, None)
    code = CANCEL_ADMIT if message.trigger == "A11" else CANCEL_DISCHARGE
    if message.trigger == "A12":
        left = [p for p in places if p.status == "completed"]
        cancelled = max(left, key=lambda p: p.end if p.end is not None else -math.inf).unit if left else ""
        transfer = ctx.units.code_of("A12", now, cancelled)
        if isinstance(transfer, Rejected):
            ctx.ignore(transfer.reason, f"{where}{transfer.detail}")
            return
        code = transfer
    at = _first_time(list(message.times), ctx, where, f"the {message.trigger} message has no time")
    patient_id = _patient_id(enc.subject, ctx, where) if at is not None else None
    if at is None or patient_id is None:
        return
    ctx.add(_stay_event(code, key, f"{code}:{at.isoformat()}", patient_id, at, enc, ward_of(now), where))


def _stay_event(
    code: str, key: str, part: str, patient_id: str, at: datetime, enc: Encounter, ward: str | None, where: str
) -> PatientEvent | Rejected:
    """An Encounter's end of the stay (``discharge``, ``transfer_out``) as a canonical event."""
    return canonical_event(
        source=SOURCE,
        key=key,
        part=part,
        patient_id=patient_id,
        observed_at=at,
        code=code,
        value=1.0,
        unit="",
        encounter=enc.id or None,
        ward=ward,
        where=where,
    )


_HANDLERS: Final[dict[str, tuple[Any, _Handler]]] = {
    "Observation": (Observation, _decode_observation),
    "MedicationAdministration": (MedicationAdministration, _decode_administration),
    "Procedure": (Procedure, _decode_procedure),
    "Encounter": (Encounter, _decode_encounter),
}


# --- Patient (demographics) --------------------------------------------------------------------


def _decode_patient(raw: dict[str, Any], ctx: _Context, where: str, full_url: str | None) -> None:
    """A Patient -> ``Age`` (``birthDate``, in years at the time of its earliest measurement in the
    Bundle, as PhysioNet gives it) and ``Gender`` (``male`` 1, ``female`` 0, other sexes none): the
    models' two static inputs. Read beside the patient's measurements only (``Measurements``: a vital
    sign or a lab intake publishes); without any, or with neither element, it is context, ignored.
    Its id: the one its results' references resolve to (``_bundle_patient_id``); its time, encounter
    and ward the earliest measurement's (placed as it is: ``DecodeResult.placed``). Read from its
    JSON, not validated whole: an element Vigil does not read must not turn context into a dead
    letter. Details name the element, never the date: PHI."""
    birth_date, sex = raw.get("birthDate"), raw.get("gender")
    gender = gender_value(sex) if isinstance(sex, str) else None
    patient_id = _bundle_patient_id(raw)
    if birth_date is None and gender is None:
        ctx.ignore("context_resource", f"{where}Patient")
        return
    found = ctx.results.first.get(patient_id) if patient_id is not None else None
    if patient_id is None or found is None:
        detail = (
            "no result of the patient's in the Bundle that is a measurement published (a vital sign or a"
            " lab, its value checked): its age and sex are read beside them only"
        )
        ctx.ignore("context_resource", f"{where}Patient: {detail}")
        return
    measured, at = found
    label = f"{where}Patient/{raw['id'] if isinstance(raw.get('id'), str) else ''}".rstrip("/") + " "
    key = _patient_key(raw, full_url)
    read: list[tuple[str, float]] = []
    if birth_date is not None:
        born = _birth_date(birth_date)
        age = born if isinstance(born, Rejected) else age_at(born, at, "birthDate")
        if isinstance(age, Rejected):
            ctx.reject(age.reason, label + age.detail)
        else:
            read.append(("Age", age))
    if gender is not None:
        read.append(("Gender", gender))
    for code, value in read:
        # its id the Patient version's and the time it is read at: the same Bundle sent again keeps
        # it, another Bundle of later results gives the age at their time
        part = f"{code}:{at.isoformat()}"
        ctx.add(
            demographic_event(
                code, value, source=SOURCE, key=key, part=part, patient_id=patient_id, beside=measured, where=label
            )
        )


def _birth_date(value: Any) -> date | Rejected:
    refused = Rejected("no_value", "birthDate is not a date to the day (YYYY-MM-DD)")
    return date_of_birth(_BIRTH_DATE.match(value) if isinstance(value, str) else None, refused)


def _patient_key(raw: dict[str, Any], full_url: str | None) -> str:
    """``_resource_key`` of a Patient read from its JSON (type/id/_history/version...)."""
    meta = raw.get("meta")
    version = meta.get("versionId") if isinstance(meta, dict) else None
    resource_id = raw.get("id")
    parsed = _LooseResource(
        resource_id if isinstance(resource_id, str) else None, version if isinstance(version, str) else None
    )
    return _resource_key("Patient", parsed, raw, full_url)


# --- shared pieces -----------------------------------------------------------------------------


class _LooseMeta:
    def __init__(self, version: str | None) -> None:
        self.versionId = version


class _LooseResource:
    """What ``_resource_key`` reads of a resource (its id and ``meta.versionId``)."""

    def __init__(self, resource_id: str | None, version: str | None) -> None:
        self.id = resource_id
        self.meta = _LooseMeta(version)


class _LooseConcept:
    """A CodeableConcept from a referenced Medication entry (only code/system/display/text read)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.text = raw.get("text") if isinstance(raw.get("text"), str) else None
        self.coding = (
            [_LooseCoding(c) for c in raw.get("coding", []) if isinstance(c, dict)]
            if isinstance(raw.get("coding"), list)
            else []
        )


class _LooseCoding:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.system = raw.get("system") if isinstance(raw.get("system"), str) else None
        self.code = raw.get("code") if isinstance(raw.get("code"), str) else None
        self.display = raw.get("display") if isinstance(raw.get("display"), str) else None


def _point_of_care(ctx: _Context, subject: Any, encounter: Any, times: list[tuple[str, Any]], where: str) -> str | None:
    """The unit a result was taken in, read from its Encounter where the Bundle carries it
    (``fhir_places.unit_at`` at the result's time; '' when unknown: scored, as an ORU^R01 without
    PV1-3); None when it is a unit the site neither monitors nor sends patients away to: the result is
    ignored (``unmonitored_unit``) and counted by unit, as HL7v2 results from a ward are. An
    Encounter of another patient than the result's places nothing (a Bundle that mixes them up)."""
    at = next((t for _, t in times if isinstance(t, datetime) and t.tzinfo is not None), None)
    unit, elsewhere = _unit_elsewhere(ctx, subject, encounter, at)
    if elsewhere is None:
        return unit
    ctx.ignore(elsewhere.reason, where + elsewhere.detail)
    ctx.result.ignored_units[point_of_care(unit)] += 1
    return None


def _unit_elsewhere(ctx: _Context, subject: Any, encounter: Any, at: datetime | None) -> tuple[str, Rejected | None]:
    """The unit a result was taken in ('' when unknown), and why it is not scored there, if it is not."""
    unit = ctx.by_full_url.unit_of(encounter, at, ctx.units)
    if unit is None or not _same_patient(ctx, subject, ctx.by_full_url.encounter(encounter)):
        return "", None
    return unit, ctx.units.scored(unit, "sent", "its Encounter's location")


def _quiet_patient_id(ctx: _Context, subject: Any) -> str | None:
    """The patient a reference names, without a dead letter when it names none (context)."""
    quiet = _Context(ctx.units, ctx.results)
    quiet.by_full_url = ctx.by_full_url
    return _patient_id(subject, quiet, "")


def _same_patient(ctx: _Context, subject: Any, encounter: Encounter | None) -> bool:
    """Whether a result's subject and its Encounter's are one patient (an Encounter that names no
    patient does not say otherwise)."""
    whose = _quiet_patient_id(ctx, encounter.subject) if encounter is not None else None
    return whose is None or whose == _quiet_patient_id(ctx, subject)


def _encounter_id(ctx: _Context, encounter: Any) -> str | None:
    """The encounter an event names: the id of the Bundle's Encounter the reference resolves to (a
    transaction's ``urn:uuid``), else the id in the reference (``Encounter/<id>``)."""
    enc = ctx.by_full_url.encounter(encounter)
    return (enc.id if enc is not None and enc.id else None) or reference_id(encounter, "Encounter")


def _codings(concept: Any) -> list[Any]:
    """A CodeableConcept's codings; none where it is absent (a component without its required code
    passes the models' validation, and is then unmapped, not a decoder error)."""
    return list(concept.coding or []) if concept is not None else []


def _first_mapped(codings: list[Any]) -> str | None:
    for coding in codings:
        canonical = canonical_for_coding(coding.system, coding.code)
        if canonical is not None:
            return canonical
    return None


def _unmapped(ctx: _Context, codings: list[Any], where: str) -> None:
    keys = [f"{c.system or ''}|{c.code or ''}" for c in codings if c.code]
    for key in keys:
        ctx.result.unknown_codes[key] += 1
    if not keys:
        ctx.result.unknown_codes["no-coding"] += 1
    ctx.reject("unmapped_code", f"{where}no mapping for {', '.join(keys) or 'an uncoded concept'}")


def _patient_id(subject: Any, ctx: _Context, where: str) -> str | None:
    """``subject`` -> patient id: ``Patient/123`` (relative, absolute or ``_history``-versioned),
    a Bundle-local ``urn:uuid:`` resolved to its Patient entry (id, else first identifier), or a
    logical reference by ``identifier.value`` (an MRN)."""
    if subject is None:
        ctx.reject("missing_subject", f"{where}no subject")
        return None
    reference = subject.reference
    if reference:
        local = reference.startswith(("urn:uuid:", "urn:oid:"))
        if local or reference in ctx.by_full_url:
            patient_id = _bundle_patient_id(ctx.by_full_url.get(reference))
            if patient_id is not None:
                return patient_id
            if local:
                ctx.reject("missing_subject", f"{where}subject reference is not a Patient entry of the Bundle")
                return None
        patient_id = reference_id(subject, "Patient")
        if patient_id is None:
            ctx.reject("missing_subject", f"{where}subject is not a Patient reference")
        return patient_id
    identifier = subject.identifier
    if identifier is not None and identifier.value and subject.type in (None, "Patient"):
        return str(identifier.value)
    ctx.reject("missing_subject", f"{where}subject has neither a Patient reference nor an identifier")
    return None


def _bundle_patient_id(patient: dict[str, Any] | None) -> str | None:
    if not isinstance(patient, dict) or patient.get("resourceType") != "Patient":
        return None
    if isinstance(patient.get("id"), str) and patient["id"]:
        return str(patient["id"])
    identifiers = patient.get("identifier")
    if isinstance(identifiers, list) and identifiers and isinstance(identifiers[0], dict):
        value = identifiers[0].get("value")
        if isinstance(value, str) and value:
            return value
    return None


def _time_candidates(date_time: Any, instant: Any, period: Any) -> list[tuple[str, Any]]:
    """A resource's times in the order they are read (``_effective_time``, ``_point_of_care``)."""
    candidates = [("effectiveDateTime", date_time), ("effectiveInstant", instant)]
    if period is not None:
        candidates.append(("effectivePeriod.start", period.start))
    return candidates


def _effective_time(date_time: Any, instant: Any, period: Any, ctx: _Context, where: str) -> datetime | None:
    """A timezone-aware instant, or a ``missing_time`` rejection. A bare date (the FHIR spec's own
    vital-sign examples say ``1999-07-02``) cannot be placed in an hourly window, so it is refused
    rather than guessed as midnight."""
    return _first_time(_time_candidates(date_time, instant, period), ctx, where, "no effective/performed time")


def _first_time(candidates: list[tuple[str, Any]], ctx: _Context, where: str, none: str) -> datetime | None:
    """The first given of named times, if it is an aware instant; else a ``missing_time`` rejection
    (``none`` when no candidate is given)."""
    for name, value in candidates:
        if value is None:
            continue
        problem = _time_problem(value)
        if problem is None:
            return value  # type: ignore[no-any-return]
        ctx.reject("missing_time", f"{where}{name} {problem}")
        return None
    ctx.reject("missing_time", f"{where}{none}")
    return None


def _time_problem(value: Any) -> str | None:
    """Why a FHIR dateTime cannot place an event in an hourly window, or None for an aware instant."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return None
    return "has no timezone offset" if isinstance(value, datetime) else "is a date without a time of day"


def _quantity_unit(system: str | None, code: str | None, unit: str | None) -> str:
    """The UCUM code when the quantity says it is UCUM (or names no system), else the display unit."""
    if code and (system in (None, "", UCUM_SYSTEM)):
        return code
    return unit or ""


def _number(value: Decimal | float | int | None) -> float:
    # absent values are filtered before; NaN then fails the event's finite-value check
    return float(value) if value is not None else math.nan


def _resource_key(resource_type: str, parsed: Any, raw: dict[str, Any], full_url: str | None) -> str:
    """Idempotency key of one resource version: type/id/_history/version, else the Bundle fullUrl,
    else a digest of the resource's canonical JSON (a POSTed resource without an id)."""
    version = parsed.meta.versionId if parsed.meta is not None and parsed.meta.versionId else ""
    if parsed.id:
        return f"{resource_type}/{parsed.id}/_history/{version}"
    if full_url:
        return f"{full_url}/_history/{version}"
    canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8", errors="surrogatepass")).hexdigest()


def _without_resource(entry: Any) -> Any:
    if isinstance(entry, dict):
        return {k: v for k, v in entry.items() if k != "resource"}
    return entry


_TIME_FIELDS = (
    "effectiveDateTime",
    "effectiveInstant",
    "effectivePeriod",
    "performedDateTime",
    "performedPeriod",
)


def _validation_reason(exc: ValidationError) -> str:
    locations = [error["loc"] for error in exc.errors()]
    if locations and all(loc and str(loc[0]) in _TIME_FIELDS for loc in locations):
        # FHIR dateTime with a time but no offset fails the spec regex: say so precisely
        return "missing_time"
    return "schema"


def _validation_detail(exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    # an unknown key may be a patient's name: named "(unexpected field)", never quoted
    location = ".".join(str(part) for part in error_location(first)) or "resource"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    # the message only, never ``input``: dead-letter details must not carry patient data
    return _first_line(f"{location}: {first['msg']}{more}")


def _first_line(text: str) -> str:
    return text.splitlines()[0][:200] if text else ""
