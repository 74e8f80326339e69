"""`vigil alerts tail --json`: the patient by the short keyed hash, as on the human line."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from vigil.cli.alert_feed import patient_label, transition_json
from vigil.schemas.alerts import Alert


def test_the_json_line_shows_the_patient_label_not_the_id_or_visit_number() -> None:
    alert = Alert(
        alert_id="a1b2c3d4e5f6",
        transition_id="t1",
        patient_id="MRN-0042-visible",
        encounter="VISIT-77-visible",
        ward="ICU-1",
        state="open",
        severity="high",
        trigger="news2_band:high",
        reason="NEWS2 high: NEWS2 7 (high)",
        at=datetime(2025, 1, 1, 3, tzinfo=UTC),
        hour=3,
        vitals={"HR": 131.0},
    )
    line = transition_json(alert)
    text = json.dumps(line)
    assert "MRN-0042-visible" not in text and "VISIT-77-visible" not in text
    assert "patient_id" not in line and "encounter" not in line
    assert line["patient_label"] == patient_label("MRN-0042-visible") and line["short_id"] == "a1b2c3d4"
    assert line["transition_id"] == "t1" and line["ward"] == "ICU-1" and line["state"] == "open"
