"""What the EHR codecs read and deliberately did not map, counted where an operator looks: the
parts ignored by reason (``vigil_interop_ignored_total``), the unknown codes, and the points of
care whose results were ignored because they are neither monitored nor away units
(``vigil_ignored_units_total{unit}``), and the FHIR results placed nowhere because Vigil has read no
Encounter of theirs (``vigil_fhir_unplaced_total``: scored as if from a monitored unit; logged once
per process). A unit missing from ``VIGIL_INGEST__MONITORED_UNITS`` (a new
ICU, a renamed one) is a unit whose patients are not scored: its name is also logged, once per
process, as a warning. The same counts for the intake agents and ``vigil mllp``. Input names the
units and the codes, so each label is bounded: past ``MAX_UNITS`` units and ``MAX_CODES`` codes per
process the rest are counted as ``other`` (60,000 distinct codes in three FHIR posts made 60,000
series: +43 MiB and a 6.6 MiB, 7.5 s /metrics)."""

from __future__ import annotations

from typing import Final

from vigil.infra import metrics
from vigil.infra.logging import get_logger
from vigil.schemas.codecs.loinc import DecodeResult

log = get_logger(__name__)
MAX_UNITS: Final = 256  # distinct unit labels and warnings per process: input names them, memory stays bounded
OTHER_UNITS: Final = "other"
_units = metrics.BoundedLabels(MAX_UNITS, OTHER_UNITS)
MAX_CODES: Final = 500  # distinct unknown-code labels per process (a few hundred bytes of series each)
OTHER_CODES: Final = "other"
_codes = metrics.BoundedLabels(MAX_CODES, OTHER_CODES)
_unplaced_said = False


def count_unmapped(result: DecodeResult) -> None:
    for ignored in result.ignored:
        metrics.INTEROP_IGNORED.labels(ignored.reason).inc()
    for code, count in result.unknown_codes.items():
        metrics.UNKNOWN_CODES.labels(_codes.keep(code[:80])[0]).inc(count)
    for unit, count in result.ignored_units.items():
        metrics.IGNORED_UNITS.labels(_unit_label(unit)).inc(count)
    if result.unplaced:
        metrics.FHIR_UNPLACED.inc(result.unplaced)
        _say_unplaced()


def _say_unplaced() -> None:
    global _unplaced_said
    if _unplaced_said:
        return
    _unplaced_said = True
    log.warning(
        "intake.fhir_unplaced",
        hint="FHIR results name Encounters Vigil has not read, so they are scored as if from a monitored "
        "unit (a ward patient's too): send the Encounters in progress before their results "
        "(docs/interop.md, 'Going live with a FHIR feed'); vigil_fhir_unplaced_total counts them",
    )


def _unit_label(unit: str) -> str:
    label, new = _units.keep(unit[:40])
    if not new:
        return label
    log.warning(
        "intake.unit_not_scored",
        unit=label,
        hint="results from this point of care (PV1-3.1, a FHIR Encounter's location) are ignored: "
        "add it to VIGIL_INGEST__MONITORED_UNITS "
        "(or __AWAY_UNITS) if Vigil should score its patients",
    )
    return label
