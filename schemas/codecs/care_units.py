"""The site's points of care, as the EHR codecs read them (pure): which results Vigil scores and
which moves end a stay. Built from the settings ``ingest.monitored_units`` and ``ingest.away_units``
(``infra.settings.IngestSettings.units``); names compare without case or outer spaces
(``schemas.events.point_of_care``). HL7v2 names a unit in PV1-3.1 (PV1-6.1 the one left), FHIR in
an ``Encounter.location`` (its display, the Location's id or identifier). Rules: docs/interop.md."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from vigil.schemas.codes import CANCEL_TRANSFER, TRANSFER_OUT
from vigil.schemas.deadletter import Rejected
from vigil.schemas.events import point_of_care


def _points_of_care(names: Iterable[str]) -> frozenset[str]:
    return frozenset(u for name in names if (u := point_of_care(name)))


@dataclass(frozen=True)
class Units:
    """``monitored``: the units Vigil scores (the ICUs); ``away``: where a patient goes and comes
    back from (theatre, imaging, a procedure room), so a move there does not end the stay, and
    results from there are scored in an open stay and open none (``models.stays``). No monitored
    unit (the default): every result is scored, every transfer is ignored, only a discharge ends a
    stay, and away units mean nothing (``of`` drops them)."""

    monitored: frozenset[str] = frozenset()
    away: frozenset[str] = frozenset()

    @classmethod
    def of(cls, monitored: Iterable[str] = (), away: Iterable[str] = ()) -> Units:
        named = _points_of_care(monitored)
        return cls(named, _points_of_care(away) if named else frozenset())

    def named(self, unit: str) -> bool:
        """Whether ``unit`` is one of the site's monitored or away units."""
        name = point_of_care(unit)
        return bool(name) and (name in self.monitored or name in self.away)

    def scored(self, assigned: str, what: str = "ORU^R01", field: str = "PV1-3") -> Rejected | None:
        """A result (``what``) from ``assigned`` (read from ``field``: HL7v2 PV1-3.1, a FHIR result's
        Encounter location): ``None`` when Vigil scores it (no monitored unit is set, no unit is
        named, or a monitored or away one), else the ``unmonitored_unit`` the decoder ignores
        (counted): a hospital-wide feed sends the wards' results too."""
        unit = point_of_care(assigned)
        if not self.monitored or not unit or self.named(unit):
            return None
        return Rejected("unmonitored_unit", f"{what} from {unit}: not a monitored or away unit ({field})")

    def leaves(self, assigned: str, prior: str, what: str) -> str | Rejected:
        """A move from ``prior`` to ``assigned`` -> ``transfer_out`` when it leaves a monitored unit, or
        an away unit (theatre after the ICU), for a unit neither monitored nor away; else a
        ``Rejected`` saying why it ends no stay (``reason`` for the caller to replace: the decoders
        ignore it, counted). ``what`` names the message in that detail. Whether the patient has a
        stay to end is the stream's to decide (``models.stays``)."""
        new, old = point_of_care(assigned), point_of_care(prior)
        moved = f"{what} {old or '?'} -> {new or '?'}"
        if not self.monitored:
            return Rejected("adt_transfer", f"{what}: no monitored units are set (ingest.monitored_units)")
        if not self.named(old):
            return Rejected("adt_transfer", f"{moved}: leaves no monitored or away unit")
        if not new or self.named(new):
            return Rejected("adt_transfer", f"{moved}: the stay goes on (a monitored or away unit)")
        return TRANSFER_OUT

    def stay_unit(self, left: str) -> str | None:
        """The ward a ``transfer_out`` names: the unit left when monitored; out of an away unit none
        (the stream's stay keeps its own unit, not theatre)."""
        return left if point_of_care(left) in self.monitored else None

    def code_of(self, trigger: str, assigned: str, prior: str) -> str | Rejected:
        """HL7v2 ``A02`` (``assigned`` PV1-3.1, the new location; ``prior`` PV1-6.1, the one left):
        ``leaves``. ``A12`` (``assigned``: the location restored; ``prior``, when sent: the cancelled
        destination) -> ``cancel_transfer`` when the transfer it cancels may have been one: back into
        a monitored unit, unless PV1-6 names a monitored or away unit; back into an away unit from
        one neither. Else the ``adt_transfer`` the decoder ignores (counted)."""
        if trigger != "A12":
            return self.leaves(assigned, prior, f"ADT^{trigger}")
        new, old = point_of_care(assigned), point_of_care(prior)
        if not self.monitored:
            return Rejected("adt_transfer", f"ADT^{trigger}: no monitored units are set (ingest.monitored_units)")
        if new in self.monitored and not self.named(old):
            return CANCEL_TRANSFER
        if new in self.away and old and not self.named(old):
            return CANCEL_TRANSFER
        return Rejected(
            "adt_transfer",
            f"ADT^{trigger} back to {new or '?'} from {old or '?'}: the cancelled transfer ended no stay",
        )


NO_UNITS: Final = Units()
