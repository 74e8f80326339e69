"""One payload's placing of FHIR results sent apart from their Encounter (pure bookkeeping, the I/O
is the caller's): the Encounters the payload carries are kept, the ones its results name are asked
of the store once each (a 10,000-entry Bundle of one patient's results names one Encounter 10,000
times), and each entry's results are placed by what is known (``DecodeResult.placed``). The FHIR
agent (Redis, async) and ``POST /fhir`` (Redis, in a thread) drive it alike, entry by entry, so a
Bundle is still decoded one entry at a time."""

from __future__ import annotations

from dataclasses import dataclass, field

from vigil.schemas.codecs.care_units import Units
from vigil.schemas.codecs.fhir_places import EncounterKey, Place
from vigil.schemas.codecs.loinc import DecodeResult, needs_place


@dataclass
class Placing:
    known: dict[EncounterKey, tuple[Place, ...]] = field(default_factory=dict)
    asked: set[EncounterKey] = field(default_factory=set)

    def carried(self, result: DecodeResult) -> dict[EncounterKey, tuple[Place, ...]]:
        """The Encounters an entry carries, to keep in the store (and known from now on)."""
        self.known.update(result.encounters)
        return result.encounters

    def to_ask(self, result: DecodeResult) -> list[EncounterKey]:
        """The Encounters an entry's results name that are neither known nor asked yet."""
        wanted = {(e.patient_id, e.encounter) for e in result.events if needs_place(e) and e.encounter}
        ask = sorted(wanted - self.known.keys() - self.asked)
        self.asked.update(ask)
        return ask

    def found(self, kept: dict[EncounterKey, tuple[Place, ...]]) -> None:
        self.known.update(kept)

    def place(self, result: DecodeResult, units: Units) -> DecodeResult:
        return result.placed(self.known, units)
