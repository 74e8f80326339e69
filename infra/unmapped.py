"""What the EHR codecs read and deliberately did not map, counted where an operator looks: the
parts ignored by reason (``vigil_interop_ignored_total``), the unknown codes, and the points of
care whose results were ignored because they are neither monitored nor away units
(``vigil_ignored_units_total{unit}``). A unit missing from ``VIGIL_INGEST__MONITORED_UNITS`` (a new
ICU, a renamed one) is a unit whose patients are not scored: its name is also logged, once per
process, as a warning. The same counts for the intake agents and ``vigil mllp``."""

from __future__ import annotations

from typing import Final

from vigil.infra import metrics
from vigil.infra.logging import get_logger
from vigil.schemas.codecs.loinc import DecodeResult

log = get_logger(__name__)
MAX_UNITS: Final = 256  # distinct unit labels and warnings per process: input names them, memory stays bounded
OTHER_UNITS: Final = "other"
_units_seen: set[str] = set()


def count_unmapped(result: DecodeResult) -> None:
    for ignored in result.ignored:
        metrics.INTEROP_IGNORED.labels(ignored.reason).inc()
    for code, count in result.unknown_codes.items():
        metrics.UNKNOWN_CODES.labels(code[:80]).inc(count)
    for unit, count in result.ignored_units.items():
        metrics.IGNORED_UNITS.labels(_unit_label(unit)).inc(count)


def _unit_label(unit: str) -> str:
    label = unit[:40]
    if label in _units_seen:
        return label
    if len(_units_seen) >= MAX_UNITS:
        return OTHER_UNITS
    _units_seen.add(label)
    log.warning(
        "intake.unit_not_scored",
        unit=label,
        hint="results from this point of care (PV1-3.1, a FHIR Encounter's location) are ignored: "
        "add it to VIGIL_INGEST__MONITORED_UNITS "
        "(or __AWAY_UNITS) if Vigil should score its patients",
    )
    return label
