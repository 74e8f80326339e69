"""One wording for people: risk in percent, times with date and zone, clinical words, no missing-data reasons."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vigil.schemas.display import (
    CODE_LABELS,
    clock,
    duration,
    feature_label,
    feature_parts,
    missing_text,
    news2_text,
    percent,
    risk_text,
    until,
    ward_zone,
)
from vigil.schemas.errors import UserError


def test_risk_is_a_percent_with_its_threshold() -> None:
    assert (percent(0.243), percent(0.0312), percent(0.06), percent(None)) == ("24%", "3.1%", "6.0%", "–")
    assert risk_text(0.24, 0.031) == "risk 24% (alert at 3.1%)"


def test_times_carry_date_and_zone_in_the_ward_zone() -> None:
    at = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)
    assert clock(at) == "1 Dec 01:30 UTC"
    assert clock(at, ward_zone("Europe/Berlin")) == "1 Dec 02:30 CET"
    assert clock(datetime(2026, 7, 1, 12, 0, tzinfo=UTC), ward_zone("America/New_York")) == "1 Jul 08:00 EDT"
    with pytest.raises(UserError, match="VIGIL_WARD_TIMEZONE"):
        ward_zone("Mars/Olympus")


def test_a_region_of_the_zone_database_is_named_as_not_a_zone() -> None:
    """ "Europe" is a folder of the zone database: ZoneInfo raised IsADirectoryError, a traceback-like
    line about a file, not the setting to change."""
    with pytest.raises(
        UserError, match="'Europe' is not a zone of the IANA database .*: set VIGIL_WARD_TIMEZONE to .* Europe/Paris"
    ):
        ward_zone("Europe")


def test_durations_read_at_any_distance() -> None:
    assert (duration(45), duration(135), duration(13560)) == ("45 min", "2 h 15 min", "9 d 10 h")
    assert (until(25), until(-65)) == ("in 25 min", "overdue by 1 h 5 min")


def test_news2_in_clinical_words() -> None:
    parameters = {"respiration_rate": 3, "spo2": 2, "air_or_oxygen": 0, "pulse": 1, "temperature": 0}
    vitals = {"Resp": 30.0, "O2Sat": 91.0, "HR": 112.0}
    assert news2_text(7, "high", parameters, vitals) == "NEWS2 7 (high): RR 30 +3, SpO2 91 +2, HR 112 +1"
    assert news2_text(2, "low", {"air_or_oxygen": 2}) == "NEWS2 2 (low): on oxygen +2"
    assert missing_text(["consciousness"]) == "not recorded: consciousness (NEWS2 may be higher)"


def test_features_say_raises_or_lowers_and_drop_missing_data() -> None:
    assert feature_label("Resp_min24h") == "RR 24 h lowest" and feature_label("SBP") == "SBP"
    parts = feature_parts(
        [
            {"feature": "habit_hours_since_lab", "value": 48.0, "contribution": 0.5},  # a site habit
            {"feature": "Phosphate_delta", "value": None, "contribution": 0.4},  # not measured
            {"feature": "SBP", "value": 101.0, "contribution": -0.2},
            {"feature": "Resp", "value": 28.5, "contribution": 0.3},
            {"feature": "blood_gas", "value": None, "contribution": 0.1},  # a measured panel
        ]
    )
    assert [(p["text"], p["direction"]) for p in parts] == [
        ("SBP 101", "lowers risk"),
        ("RR 28.5", "raises risk"),
        ("blood gas", "raises risk"),
    ]
    same = [
        {"feature": "Temp", "value": 39.5, "contribution": 0.3},
        {"feature": "Temp_last", "value": 39.5, "contribution": 0.2},
    ]
    assert [p["text"] for p in feature_parts(same)] == ["Temp 39.5"]  # one measurement, shown once
    only_missing = [{"feature": "habit_lab_values_24h", "value": 0.0, "contribution": 0.2}]
    assert feature_parts(only_missing) == []  # no explanation that is only about missing data


@pytest.mark.parametrize(
    ("feature", "value", "shown"),
    [
        ("pH", 7.26, "pH 7.26"),  # acidaemia: "7.3" read near normal
        ("pH_min24h", 7.149, "pH 24 h lowest 7.15"),
        ("pH_delta", -0.05, "pH change since previous value -0.05"),
        ("HR_slope12h", 0.004, "HR 12 h trend per hour +0.004"),  # "0.00"
        ("HR_std24h", 8.73, "HR 24 h variability (SD) 8.7"),
        ("TroponinI", 0.004, "troponin I 0.004"),
        ("Lactate", 0.995, "lactate 1.0"),
        ("shock_index", 1.05, "shock index (HR/SBP) 1.05"),
        ("Resp_diff12h", 6.0, "RR change over 12 h +6"),
        ("Bilirubin_direct_max_stay", 2.3, "direct bilirubin highest this stay 2.3"),
        # a code with decimals of its own rounds a small change to zero: "0.00", "-0.0" read as no change
        ("pH_delta", 0.004, "pH change since previous value +0.004"),
        ("pH_delta", -0.004, "pH change since previous value -0.004"),
        ("Lactate_diff6h", -0.03, "lactate change over 6 h -0.03"),
        ("Temp_diff1h", 0.04, "Temp change over 1 h +0.04"),
        ("pH_delta", -0.0, "pH change since previous value 0.00"),  # never "-0.00"
        ("HR_delta", -0.0, "HR change since previous value 0"),  # never "-0"
    ],
)
def test_model_values_keep_the_digits_that_matter(feature: str, value: float, shown: str) -> None:
    (part,) = feature_parts([{"feature": feature, "value": value, "contribution": 0.2}])
    assert part["text"] == shown


def _shipped_tree_features() -> list[str]:
    """The tree model's inputs as the shipped bundle's manifest names them (the names explanations carry)."""
    from vigil.models.bundle import STEPPING_DIR
    from vigil.models.integrity import load_manifest

    return list(load_manifest(STEPPING_DIR)["tree_features"])


def test_every_feature_the_models_explain_reads_in_clinical_words() -> None:
    """129 of the 234 physiology features read as raw model names ("Resp diff12h", "MAP mean24h",
    "Lactate from baseline"). The measurement-habit features are summed into one entry the card leaves
    out (models.bundle.explain), so they need no words."""
    from vigil.models.stay_features import MISSINGNESS_FEATURES, USED_CODES

    names = [n for n in _shipped_tree_features() if n not in MISSINGNESS_FEATURES]
    assert len(names) > 200
    suffixes = {n.removeprefix(f"{c}_") for n in names for c in USED_CODES if n.startswith(f"{c}_")}
    raw_words = suffixes | {s.replace("_", " ") for s in suffixes}
    unclear = []
    for name in names:
        label = feature_label(name)
        code = next((c for c in sorted(USED_CODES, key=len, reverse=True) if name.startswith(f"{c}_")), name)
        words = f" {label} "
        if (
            "_" in label
            or code not in CODE_LABELS
            or not label.startswith(CODE_LABELS[code])
            or any(f" {raw} " in words for raw in raw_words)
        ):
            unclear.append(f"{name} -> {label!r}")
    assert unclear == []
