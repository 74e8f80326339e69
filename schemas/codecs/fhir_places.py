"""Where a FHIR payload puts its patient (pure): the unit an ``Encounter.location`` names, and the
unit an Observation (a MedicationAdministration, a Procedure) was taken in, read from its Encounter
when the Bundle carries it. HL7v2 names the unit in PV1-3.1; FHIR names it in the Encounter's
location list, whose entries may reference ``Location`` resources of the same Bundle, down to the
bed (the HL7 v2-to-FHIR guide maps PV1-3 to the most granular Location, bed ``partOf`` room
``partOf`` point of care). Rules: docs/interop.md, "FHIR: the unit a result comes from"."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from fhir.resources.R4B.encounter import Encounter
from pydantic import ValidationError

from vigil.schemas.codecs.care_units import Units

if TYPE_CHECKING:
    from vigil.schemas.codecs.fhir_message import MessageEvent

WITHIN_A_UNIT: Final = frozenset({"ro", "bd"})  # location-physical-type: room, bed
NOT_THERE_YET: Final = frozenset({"planned", "reserved"})  # Encounter.location.status
MAX_PART_OF: Final = 4  # bed -> room -> unit -> floor: a deeper (or circular) chain names no unit
MAX_WARD_CHARS: Final = 32  # PatientEvent.ward
# An Encounter as its units are kept between payloads: (patient id, Encounter id). A result is placed
# only by an Encounter of its own patient, and two feeds' Encounter ids never meet.
EncounterKey = tuple[str, str]


class BundleIndex(dict[str, dict[str, Any]]):
    """A Bundle's resources by their entry's ``fullUrl``, which references resolve to, with the
    Encounters that results name parsed once per Bundle (a 10,000-entry Bundle of one patient's
    results names one Encounter 10,000 times)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._by_type_id: dict[str, dict[str, Any]] | None = None
        self._resolved: dict[str, dict[str, Any] | None] = {}
        self._encounters: dict[str, Encounter | None] = {}
        self._units: dict[tuple[str, datetime | None, Units], str] = {}
        # what a message Bundle says happened, when it is a cancel (``fhir_message.cancel_event``)
        self.message: MessageEvent | None = None

    def __setitem__(self, full_url: str, resource: dict[str, Any]) -> None:
        super().__setitem__(full_url, resource)
        self._by_type_id = None  # filled while the Bundle is read: what was resolved before may change
        self._resolved.clear()
        self._encounters.clear()
        self._units.clear()

    def resolve(self, reference: str) -> dict[str, Any] | None:
        """The resource a reference points to: by fullUrl, or a relative ``Type/id`` matching the tail
        of an absolute fullUrl (the FHIR rule for resolving references inside a Bundle), or the
        resource of that type and id (a ``urn:uuid`` fullUrl with the resource's own id)."""
        if reference in self:
            return self[reference]
        if reference not in self._resolved:
            suffix = "/" + reference.lstrip("/")
            found = next((r for full_url, r in self.items() if full_url.endswith(suffix)), None)
            self._resolved[reference] = found if found is not None else self._type_ids().get(reference.strip("/"))
        return self._resolved[reference]

    def _type_ids(self) -> dict[str, dict[str, Any]]:
        if self._by_type_id is None:
            self._by_type_id = {
                f"{r['resourceType']}/{r['id']}": r
                for r in self.values()
                if isinstance(r.get("resourceType"), str) and isinstance(r.get("id"), str)
            }
        return self._by_type_id

    def unit_of(self, reference: Any, at: datetime | None, units: Units) -> str | None:
        """``unit_at`` of the Bundle's Encounter that a ``Reference`` names (None when the Bundle
        does not carry it), once per Encounter and time: a converted ORU^R01's results share both."""
        encounter = self.encounter(reference)
        if encounter is None:
            return None
        key = (reference.reference, at, units)
        if key not in self._units:
            self._units[key] = unit_at(places_of(encounter, units, self), at)
        return self._units[key]

    def encounter(self, reference: Any) -> Encounter | None:
        """The Bundle's Encounter that a ``Reference`` names, parsed; None when the Bundle does not
        carry it (or it is not a valid Encounter: its own entry says why where it is decoded)."""
        target = getattr(reference, "reference", None)
        if not isinstance(target, str) or not target:
            return None
        if target not in self._encounters:
            resource = self.resolve(target)
            parsed = None
            if resource is not None and resource.get("resourceType") == "Encounter":
                try:
                    parsed = Encounter.model_validate(resource)
                except ValidationError:
                    parsed = None
            self._encounters[target] = parsed
        return self._encounters[target]


def reference_id(reference: Any, resource_type: str) -> str | None:
    """``Patient/123``, ``https://ehr/fhir/Patient/123/_history/4`` -> ``123``; anything else None."""
    if reference is None or not reference.reference:
        return None
    parts = [p for p in reference.reference.split("?")[0].split("/") if p]
    if "_history" in parts:
        parts = parts[: parts.index("_history")]
    if len(parts) >= 2 and parts[-2] == resource_type and parts[-1]:
        return parts[-1]
    return None


def within_a_unit(place: Any) -> bool:
    """An ``Encounter.location`` (or a raw ``Location`` of the Bundle) that is a room or a bed."""
    if isinstance(place, dict):
        kind = place.get("physicalType")
        codings = kind.get("coding") if isinstance(kind, dict) else None
        codes = [c.get("code") for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []
        return any(isinstance(code, str) and code in WITHIN_A_UNIT for code in codes)
    kind = place.physicalType
    return kind is not None and any(c.code in WITHIN_A_UNIT for c in kind.coding or [])


def instant_key(value: Any) -> float:
    """Order of FHIR dateTimes (aware or not, a date): their timestamp, -inf when absent."""
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()
    if value is not None and hasattr(value, "year"):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
    return -math.inf


def unit_name(reference: Any, units: Units, index: BundleIndex) -> str:
    """What a location reference calls the unit: where it points to a ``Location`` of the Bundle,
    that Location's identifiers, name, aliases and id (walking ``partOf`` up from a room or a bed to
    its unit), then the reference's display, Location id and identifier's value (not for a room or
    a bed: those name the unit only through ``partOf``); the first that the site names, else the
    first given ('' when none)."""
    given = [
        reference.display or "",
        reference_id(reference, "Location") or "",
        (reference.identifier.value or "") if reference.identifier is not None else "",
    ]
    target = index.resolve(reference.reference) if reference.reference else None
    if isinstance(target, dict) and target.get("resourceType") == "Location":
        unit = _unit_location(target, index)
        given = (_names(unit) if unit is not None else []) + (given if unit is target else [])
    return next((n for n in given if units.named(n)), next((n for n in given if n.strip()), ""))


def _unit_location(location: dict[str, Any], index: BundleIndex) -> dict[str, Any] | None:
    """The Location itself, or for a room or a bed the first Location up its ``partOf`` chain in the
    Bundle that is neither (None when the chain leaves the Bundle or runs past ``MAX_PART_OF``)."""
    for _ in range(MAX_PART_OF + 1):
        if not within_a_unit(location):
            return location
        part_of = location.get("partOf")
        target = part_of.get("reference") if isinstance(part_of, dict) else None
        parent = index.resolve(target) if isinstance(target, str) and target else None
        if not isinstance(parent, dict) or parent.get("resourceType") != "Location":
            return None
        location = parent
    return None


def _names(location: dict[str, Any]) -> list[str]:
    """A raw Location's names: its identifiers' values (where the HL7 v2-to-FHIR guide puts PV1-3.1,
    the point of care), its name, aliases and id."""
    aliases, identifiers = location.get("alias"), location.get("identifier")
    names = [i.get("value") for i in identifiers if isinstance(i, dict)] if isinstance(identifiers, list) else []
    names += [location.get("name"), *(aliases if isinstance(aliases, list) else [])]
    names.append(location.get("id"))
    return [n for n in names if isinstance(n, str)]


@dataclass(frozen=True, slots=True)
class Place:
    """One location of an Encounter as Vigil reads it: the unit's name (``unit_name``), its status
    and its period (epoch seconds; None when not given). What is kept of an Encounter between
    payloads (``places_of``, ``to_json``) is these, never the resource."""

    unit: str
    status: str | None = None
    start: float | None = None
    end: float | None = None


def places_of(encounter: Encounter, units: Units, index: BundleIndex) -> tuple[Place, ...]:
    """The Encounter's units, in its order: rooms, beds and planned or reserved locations are not
    read (they are not where a result is taken)."""
    return tuple(
        Place(unit_name(p.location, units, index), p.status, _seconds(p.period, "start"), _seconds(p.period, "end"))
        for p in encounter.location or []
        if p.location is not None and not within_a_unit(p) and p.status not in NOT_THERE_YET
    )


def _seconds(period: Any, edge: str) -> float | None:
    value = getattr(period, edge, None) if period is not None else None
    return instant_key(value) if value is not None else None


def unit_at(places: Sequence[Place], at: datetime | None) -> str:
    """The unit the patient was in at ``at`` (a result's time): the place whose period holds it (the
    latest begun when several do), else the one the patient is in now (``active``, or neither
    status nor end given). '' when none."""
    held = [p for p in places if at is not None and _holds(p, at.timestamp())]
    if not held:
        held = [p for p in places if p.status in ("active", None) and p.end is None]
    if not held:
        return ""
    return max(held, key=lambda p: p.start if p.start is not None else -math.inf).unit


def _holds(place: Place, t: float) -> bool:
    if place.start is None:
        return False
    if place.end is None and place.status == "completed":
        return False  # left, when is not said
    return place.start <= t and (place.end is None or t < place.end)


def places_to_json(places: Sequence[Place]) -> bytes:
    return json.dumps([[p.unit, p.status, p.start, p.end] for p in places], separators=(",", ":")).encode()


def places_from_json(blob: bytes | str | None) -> tuple[Place, ...]:
    """Stored places; none for a missing or unreadable blob (the result is then scored unplaced)."""
    try:
        rows = json.loads(blob) if blob else []
        return tuple(Place(str(u), s if isinstance(s, str) else None, _number(a), _number(b)) for u, s, a, b in rows)
    except (ValueError, TypeError):
        return ()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def ward_of(unit: str) -> str | None:
    """The ward an event carries for ``unit`` (``PatientEvent.ward``: at most 32 characters)."""
    return unit.strip()[:MAX_WARD_CHARS].strip() or None
