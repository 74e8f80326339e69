"""An answer's ids and author carry no control, bidi-override or zero-width character, as an event's
identifiers (``schemas.events.HIDDEN_CATEGORIES``); its note none but line breaks. They reach the
operator's terminal (``vigil alerts tail``: an escape set its title and cleared its screen), the
dashboard and the FHIR performer's display as sent."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from rich.console import Console

from vigil.cli.alert_feed import transition_line
from vigil.schemas.alerts import Alert, AlertAck

NOW = datetime.now(UTC).isoformat()
ANSWER = {"alert_id": "a1", "patient_id": "p1", "action": "acknowledge", "by": "pager:jsmith", "at": NOW}
HIDDEN = ["\x1b]0;owned\x07", "\x1b[2J", "\u202e", "\u200b", "\x00", "\r", "\t", "\u2028", "\ufeff", "\x7f"]


def read(**changes: object) -> AlertAck:
    return AlertAck.model_validate_json(json.dumps({**ANSWER, **changes}))


def refused_type(**changes: object) -> str:
    with pytest.raises(ValidationError) as caught:
        read(**changes)
    (error,) = caught.value.errors()
    return str(error["type"])


@pytest.mark.parametrize("hidden", HIDDEN)
@pytest.mark.parametrize("field", ["alert_id", "patient_id", "by"])
def test_ids_and_author_with_a_hidden_character_are_refused(field: str, hidden: str) -> None:
    assert refused_type(**{field: f"x{hidden}y"}) == "hidden_character"


@pytest.mark.parametrize("hidden", HIDDEN)
def test_a_note_with_a_hidden_character_is_refused(hidden: str) -> None:
    assert refused_type(note=f"seen{hidden}by the team") == "hidden_character"


def test_a_note_may_run_over_lines_and_names_may_be_accented() -> None:
    answer = read(action="snooze", snooze_min=30, note="seen at the bedside\nfluids running", by="Dr Zoë Müller")
    assert answer.note == "seen at the bedside\nfluids running" and answer.by == "Dr Zoë Müller"


def test_the_patient_id_is_read_as_an_events() -> None:
    """Trimmed, as ingest trims it: the answer finds the patient its alert is about."""
    assert read(patient_id=" p1 ").patient_id == "p1"
    assert refused_type(patient_id="p 1") == "string_pattern_mismatch"


def test_the_note_is_bounded() -> None:
    assert refused_type(note="x" * 501) == "string_too_long"


def test_the_reviews_answer_never_reaches_the_terminal() -> None:
    """/tmp/hunt-contracts/ack_controls.py: the title set, the screen cleared and the name reversed."""
    sent: dict[str, Any] = {
        "action": "snooze",
        "snooze_min": 30,
        "by": "pager\x1b]0;owned\x07\x1b[2J\u202eevil",
        "note": "ok\r\n\x1b[31mfake line",
    }
    with pytest.raises(ValidationError):
        read(**sent)
    answer = read(action="snooze", snooze_min=30, by="pager", note="ok\nchecked")
    shown = Alert(
        alert_id="a1" * 8,
        transition_id="t",
        patient_id="p1",
        state="acknowledged",
        severity="high",
        trigger="news2_band:high",
        reason=f"snoozed 30 min by {answer.by}: {answer.note}",
        at=answer.at,
        hour=3,
        by=answer.by,
    )
    out = io.StringIO()
    Console(file=out, force_terminal=True, width=300).print(transition_line(shown))
    assert "\x1b]" not in out.getvalue() and "\x1b[2J" not in out.getvalue()
