"""An answer's ids carry no control, bidi-override or zero-width character, as an event's identifiers
(``schemas.events.HIDDEN_CATEGORIES``); its author and note, written by people, hold the format
characters their writing needs (``WRITTEN_TEXT_FORMAT_CHARACTERS``) and no other, and a note runs over
lines (CRLF and CR read as ``\n``, a tab as a space). They reach the operator's terminal (``vigil alerts
tail``: an escape set its title and cleared its screen), the dashboard and the FHIR performer's
display as sent; a refused answer leaves the alert open and paging again (/tmp/hunt-diffB/ack_notes.py)."""

from __future__ import annotations

import io
import json
import unicodedata
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from rich.console import Console

from vigil.cli.alert_feed import transition_line
from vigil.schemas.alerts import Alert, AlertAck
from vigil.schemas.events import HIDDEN_CATEGORIES

NOW = datetime.now(UTC).isoformat()
ANSWER = {"alert_id": "a1", "patient_id": "p1", "action": "acknowledge", "by": "pager:jsmith", "at": NOW}
# escapes that drive a terminal, the bidi embeddings, overrides and isolates of Trojan Source, and the
# other controls and invisible characters: refused everywhere in an answer
HIDDEN = [
    "\x1b]0;owned\x07",
    "\x1b[2J",
    "\x07",
    "\x85",
    "\x9b",
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200b",
    "\x00",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\x7f",
]
# what people's writing holds: the soft hyphen, ZWNJ (Persian names), ZWJ (emoji), LRM and RLM
WRITTEN = ["\u00ad", "\u200c", "\u200d", "\u200e", "\u200f"]


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


@pytest.mark.parametrize("hidden", ["\r", "\t", "\n", *WRITTEN])
@pytest.mark.parametrize("field", ["alert_id", "patient_id"])
def test_the_ids_keep_the_identifier_rules(field: str, hidden: str) -> None:
    """Machine ids: no line break, tab or format character, as an event's identifiers."""
    assert refused_type(**{field: f"x{hidden}y"}) == "hidden_character"


@pytest.mark.parametrize("hidden", ["\r", "\t", "\n"])
def test_the_author_is_one_line(hidden: str) -> None:
    assert refused_type(by=f"Dr{hidden}Smith") == "hidden_character"


@pytest.mark.parametrize("written", WRITTEN)
@pytest.mark.parametrize("field", ["by", "note"])
def test_the_format_characters_people_write_are_read(field: str, written: str) -> None:
    assert getattr(read(**{field: f"x{written}y"}), field) == f"x{written}y"


@pytest.mark.parametrize(
    ("by", "note"),
    [
        ("Mohammad\u200creza", "seen by \U0001f469\u200d\u2695\ufe0f"),  # ZWNJ; the health worker emoji
        ("\u05d3\u05e0\u05d4", "\u05e0\u05d1\u05d3\u05e7\u200f 10:30"),  # a Hebrew keyboard's RLM
        ("Dr Zo\u00eb M\u00fcller", "hypo\u00adtension, seen \U0001f44d\U0001f3fd"),  # a word processor's soft hyphen
    ],
)
def test_the_reviews_answers_are_applied(by: str, note: str) -> None:
    """/tmp/hunt-diffB/ack_notes.py: each was refused, the alert left open and paging again."""
    answer = read(by=by, note=note)
    assert (answer.by, answer.note) == (by, note)


@pytest.mark.parametrize(
    ("sent", "read_as"),
    [
        ("BP 90/60\r\nfluids running", "BP 90/60\nfluids running"),
        ("BP 90/60\rfluids running", "BP 90/60\nfluids running"),
        ("BP\t90/60\r\n\r\nok", "BP 90/60\n\nok"),
    ],
)
def test_a_paging_systems_line_breaks_and_tabs_are_read(sent: str, read_as: str) -> None:
    """A CR alone would write over the line in a terminal: it is a line break, as CRLF is."""
    answer = read(action="snooze", snooze_min=30, note=sent)
    assert answer.note == read_as and "\r" not in json.loads(answer.model_dump_json())["note"]


def test_a_bidi_override_beside_a_written_mark_is_still_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        read(note="ok\u200f\u202eevil")
    assert "U+202E" in str(caught.value)


def test_the_difference_from_an_identifier_is_only_format_characters() -> None:
    """One list of what is refused: the events' categories, less these named characters."""
    from vigil.schemas.alerts import WRITTEN_TEXT_FORMAT_CHARACTERS  # named with this change

    assert frozenset(WRITTEN) == WRITTEN_TEXT_FORMAT_CHARACTERS
    assert all(unicodedata.category(ch) in HIDDEN_CATEGORIES for ch in WRITTEN_TEXT_FORMAT_CHARACTERS)


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
