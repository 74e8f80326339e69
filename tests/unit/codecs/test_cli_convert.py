"""``vigil convert``: registered on a fresh Typer app and driven through CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

FIXTURES = Path(__file__).parent / "fixtures"


def lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_convert_hl7v2_prints_events_then_the_summary(app: typer.Typer) -> None:
    result = CliRunner().invoke(
        app, ["convert", "--from", "hl7v2", str(FIXTURES / "hl7v2" / "oru_r01_vitals.hl7"), "--json"]
    )
    assert result.exit_code == 0, result.output
    *events, summary = lines(result.stdout)
    assert len(events) == 10 and {e["source"] for e in events} == {"hl7v2"}
    assert summary["ok"] and summary["events"] == 10 and summary["rejected"] == 1
    assert summary["unknown_codes"] == {"LN|39156-5": 1}
    assert "unmapped_code" in result.stderr


def convert_at(
    app: typer.Typer, monkeypatch: pytest.MonkeyPatch, units: str | None, path: str, source: str = "hl7v2"
) -> Result:
    """``vigil convert --from SOURCE PATH --json`` with ``VIGIL_INGEST__MONITORED_UNITS`` set to ``units``."""
    from vigil.infra.settings import get_settings

    if units is None:
        monkeypatch.delenv("VIGIL_INGEST__MONITORED_UNITS", raising=False)
    else:
        monkeypatch.setenv("VIGIL_INGEST__MONITORED_UNITS", units)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, ["convert", "--from", source, path, "--json"])
    finally:
        get_settings.cache_clear()


def test_convert_ends_a_stay_on_a_transfer_out_of_a_unit_the_settings_name(app: typer.Typer, monkeypatch) -> None:
    a02 = str(FIXTURES / "hl7v2" / "adt_a02_transfer.hl7")
    (summary,) = lines(convert_at(app, monkeypatch, None, a02).stdout)
    assert (summary["events"], summary["rejected"], summary["ignored"]) == (0, 0, 1)  # no monitored units
    result = convert_at(app, monkeypatch, '["icu-3", "SICU"]', a02)
    assert result.exit_code == 0, result.output
    event, summary = lines(result.stdout)
    assert (event["code"], event["ward"]) == ("transfer_out", "ICU-3") and summary["events"] == 1


def test_convert_names_the_unit_whose_results_the_settings_leave_unscored(app: typer.Typer, monkeypatch) -> None:
    """What an integrator runs to see why a unit's patients are not on the ward view."""
    result = convert_at(app, monkeypatch, '["ICU-3"]', str(FIXTURES / "hl7v2" / "oru_r01_local_codes.hl7"))  # WARD7
    assert result.exit_code == 0, result.output  # nothing wrong with it: not Vigil's to score
    (summary,) = lines(result.stdout)
    assert (summary["events"], summary["rejected"], summary["ignored"]) == (0, 0, 1)
    assert summary["ignored_units"] == {"WARD7": 1}
    assert "ignored unmonitored_unit: " in result.stderr and "WARD7" in result.stderr


def test_convert_names_the_unit_a_fhir_bundles_encounter_puts_unscored_results_in(
    app: typer.Typer, monkeypatch
) -> None:
    bundle = str(FIXTURES / "fhir" / "bundle-transaction-ward-results.json")
    result = convert_at(app, monkeypatch, '["ICU-3"]', bundle, "fhir")
    assert result.exit_code == 0, result.output
    (summary,) = lines(result.stdout)
    assert (summary["events"], summary["rejected"], summary["ignored_units"]) == (0, 0, {"4WEST": 2})
    *events, summary = lines(convert_at(app, monkeypatch, '["4west"]', bundle, "fhir").stdout)
    assert [(e["code"], e["ward"]) for e in events] == [("HR", "4WEST"), ("O2Sat", "4WEST")]


def test_convert_fhir_bundle(app: typer.Typer) -> None:
    result = CliRunner().invoke(
        app, ["convert", "--from", "fhir", str(FIXTURES / "fhir" / "bundle-searchset-vitals.json"), "--json"]
    )
    assert result.exit_code == 0, result.output
    *events, summary = lines(result.stdout)
    assert sorted(e["code"] for e in events) == ["Age", "DBP", "Gender", "HR", "O2Sat", "Resp", "SBP", "Temp"]
    assert (summary["events"], summary["rejected"], summary["ignored"]) == (8, 1, 1)  # the Patient gives Age and Gender


def test_convert_without_json_prints_only_events(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["convert", str(FIXTURES / "fhir" / "observation-example-satO2.json")])
    assert result.exit_code == 0
    assert [e["code"] for e in lines(result.stdout)] == ["O2Sat"]


def test_convert_ndjson(app: typer.Typer, tmp_path: Path) -> None:
    sat = json.loads((FIXTURES / "fhir" / "observation-example-satO2.json").read_text())
    glasgow = json.loads((FIXTURES / "fhir" / "observation-example-glasgow.json").read_text())
    path = tmp_path / "export.ndjson"
    path.write_text(json.dumps(sat) + "\n" + json.dumps(glasgow) + "\n")
    result = CliRunner().invoke(app, ["convert", str(path), "--json"])
    assert lines(result.stdout)[-1]["events"] == 2


def test_convert_exits_1_when_nothing_maps(app: typer.Typer) -> None:
    result = CliRunner().invoke(
        app, ["convert", str(FIXTURES / "fhir" / "observation-example-heart-rate.json"), "--json"]
    )
    assert result.exit_code == 1
    summary = lines(result.stdout)[-1]
    assert summary == {
        "ok": False,
        "events": 0,
        "rejected": 1,
        "ignored": 0,
        "reasons": {"missing_time": 1},
        "unknown_codes": {},
        "ignored_units": {},
    }


def test_convert_rejects_an_unknown_format(app: typer.Typer) -> None:
    result = CliRunner().invoke(
        app, ["convert", "--from", "csv", str(FIXTURES / "fhir" / "observation-example-satO2.json")]
    )
    assert result.exit_code == 2
