"""What the codecs did not map, counted for the operator: a unit whose results are ignored is named
on /metrics and, once per process, in a warning; input names the units, so their number is bounded."""

from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from vigil.infra import metrics, unmapped
from vigil.infra.unmapped import MAX_CODES, MAX_UNITS, count_unmapped
from vigil.schemas.codecs.loinc import DecodeResult
from vigil.schemas.deadletter import Rejected


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unmapped, "_units", metrics.BoundedLabels(unmapped.MAX_UNITS, unmapped.OTHER_UNITS))
    monkeypatch.setattr(unmapped, "_codes", metrics.BoundedLabels(unmapped.MAX_CODES, unmapped.OTHER_CODES))
    monkeypatch.setattr(unmapped, "_unplaced_said", False)


def ward(unit: str, n: int = 1) -> DecodeResult:
    return DecodeResult(ignored=[Rejected("unmonitored_unit", f"from {unit}")] * n, ignored_units=Counter({unit: n}))


def test_a_unit_not_scored_is_counted_by_name_and_warned_of_once() -> None:
    before = (
        value("vigil_ignored_units_total", unit="CCU-T"),
        value("vigil_interop_ignored_total", reason="unmonitored_unit"),
    )
    with capture_logs() as logs:
        count_unmapped(ward("CCU-T", 3))
        count_unmapped(ward("CCU-T"))
    assert value("vigil_ignored_units_total", unit="CCU-T") == before[0] + 4
    assert value("vigil_interop_ignored_total", reason="unmonitored_unit") == before[1] + 4
    (warning,) = [e for e in logs if e["event"] == "intake.unit_not_scored"]
    assert warning["log_level"] == "warning" and warning["unit"] == "CCU-T"
    assert "VIGIL_INGEST__MONITORED_UNITS" in warning["hint"]


def test_results_placed_nowhere_are_counted_and_warned_of_once() -> None:
    """FHIR results whose Encounter Vigil never read are scored as if from a monitored unit: at a
    go-live without the Encounters first, every ward patient's. The operator must see it."""
    before = value("vigil_fhir_unplaced_total")
    with capture_logs() as logs:
        count_unmapped(DecodeResult(unplaced=3))
        count_unmapped(DecodeResult(unplaced=2))
        count_unmapped(DecodeResult())
    assert value("vigil_fhir_unplaced_total") == before + 5
    (warning,) = [e for e in logs if e["event"] == "intake.fhir_unplaced"]
    assert warning["log_level"] == "warning" and "send the Encounters in progress" in warning["hint"]


def test_unknown_codes_and_other_ignored_parts_are_counted_as_before() -> None:
    before = value("vigil_unknown_codes_total", code="LN|9999-T"), value("vigil_interop_ignored_total", reason="panel")
    count_unmapped(DecodeResult(ignored=[Rejected("panel")], unknown_codes=Counter({"LN|9999-T": 2})))
    assert value("vigil_unknown_codes_total", code="LN|9999-T") == before[0] + 2
    assert value("vigil_interop_ignored_total", reason="panel") == before[1] + 1


def test_the_units_named_are_bounded_the_rest_are_other() -> None:
    with capture_logs() as logs:
        for n in range(MAX_UNITS + 5):
            count_unmapped(ward(f"T-WARD-{n}"))
    assert len([e for e in logs if e["event"] == "intake.unit_not_scored"]) == MAX_UNITS
    assert value("vigil_ignored_units_total", unit=f"T-WARD-{MAX_UNITS - 1}") >= 1
    assert value("vigil_ignored_units_total", unit=f"T-WARD-{MAX_UNITS}") == 0
    assert value("vigil_ignored_units_total", unit="other") >= 5
    long = "W" * 300
    unmapped._units.clear()
    count_unmapped(ward(long))
    assert value("vigil_ignored_units_total", unit="W" * 40) >= 1  # a label is at most 40 characters


def test_the_unknown_codes_named_are_bounded_the_rest_are_other() -> None:
    """A FHIR post of 20,000 components with made-up codes made 20,000 series (60,000 after three:
    +43 MiB, /metrics 6.6 MiB and 7.5 s a scrape, unauthenticated)."""
    before = value("vigil_unknown_codes_total", code="other")
    codes = Counter({f"x|BOUND-{n}": 1 for n in range(MAX_CODES + 20)})
    count_unmapped(DecodeResult(unknown_codes=codes))
    assert value("vigil_unknown_codes_total", code=f"x|BOUND-{MAX_CODES - 1}") >= 1
    assert value("vigil_unknown_codes_total", code=f"x|BOUND-{MAX_CODES}") == 0
    assert value("vigil_unknown_codes_total", code="other") == before + 20
    named = {
        s.labels["code"]
        for family in REGISTRY.collect()
        if family.name == "vigil_unknown_codes"
        for s in family.samples
        if s.labels.get("code", "").startswith("x|BOUND-")
    }
    assert len(named) == MAX_CODES
