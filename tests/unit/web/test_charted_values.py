"""A card writes each vital sign as NEWS2 scored it: at the chart's precision, rounded half away from
zero on the value as written (RCP NEWS2 2017 chart 1; models.early_warning). Python's format rounds
half to even and a float32 38.05 is 38.0499...: "RR 24 +3" for the RR 24.5 that scored as 25."""

from __future__ import annotations

import numpy as np
import pytest
from web_builders import risk_score

from vigil.agents.web.ward import WardModel
from vigil.models.early_warning import charted, news2, observations_from_row
from vigil.schemas import topics
from vigil.schemas.display import feature_parts, news2_text, vital_text

TEMP_38_05 = float(np.float32(38.05))  # as the stream's float32 window hands it back


@pytest.mark.parametrize(
    ("code", "value", "shown"),
    [
        ("Resp", 24.5, "25"),
        ("Resp", 20.5, "21"),
        ("SBP", 100.5, "101"),
        ("HR", 90.5, "91"),
        ("Temp", TEMP_38_05, "38.1"),
    ],
)
def test_a_value_is_written_as_news2_charts_it(code: str, value: float, shown: str) -> None:
    assert vital_text(code, value) == shown
    assert float(shown) == charted(value, 1 if code == "Temp" else 0)  # one rounding for both


def test_news2_words_carry_the_value_that_scored() -> None:
    vitals = {"Resp": 24.5, "SBP": 100.5, "Temp": TEMP_38_05, "HR": 70.0, "O2Sat": 98.0}
    scored = news2(observations_from_row(vitals))
    text = news2_text(scored.total, scored.band, scored.parameters, vitals)
    assert "RR 25 +3" in text and "SBP 101 +1" in text and "Temp 38.1 +1" in text
    assert feature_parts([{"feature": "SBP", "value": 100.5, "contribution": -0.2}])[0]["text"] == "SBP 101"


def test_the_sparklines_latest_values_are_written_by_the_server() -> None:
    """The page wrote the sparklines' last values with toFixed, a rounding of its own (38.0 for the
    float32 38.05 that scored as 38.1): the server writes them."""
    m = WardModel(b"k", 10)
    record = risk_score("p", 1, 3, "low-medium").model_copy(update={"vitals": {"Resp": 24.5, "Temp": TEMP_38_05}})
    message = m.apply(topics.SCORES, record.model_dump_json().encode())
    assert message is not None
    shown = message["row"]["trend_text"]
    assert (shown["Resp"], shown["Temp"], shown["news2"], shown["risk"], shown["HR"]) == ("25", "38.1", "3", "20%", "–")


def test_a_value_past_any_chart_is_shown_not_raised() -> None:
    """Decimal's quantize raised InvalidOperation at 1e28 and beyond: one such feature value made the
    ward's /api/state fail."""
    from vigil.schemas.display import charted, charted_text

    assert charted(1e30) == 1e30 and charted_text(1e30, 1).startswith("1000000000000000")
    assert charted(24.5) == 25.0
