"""A rejection's detail quotes the sender's input (an unknown field's name, a FHIR resourceType or id,
an HL7v2 message type): its characters that do not print are escaped where the rejection is made, so
no dead letter, MLLP ACK or FHIR OperationOutcome carries an escape sequence to a terminal."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from vigil.schemas.deadletter import MAX_DETAIL_CHARS, DeadLetter, Rejected, Source, printable

NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
# an OSC that retitles the terminal, then one that clears the screen and homes the cursor
SEQUENCE = "\x1b]0;OWNED\x07\x1b[2J\x1b[H"


def test_an_unknown_fields_name_never_reaches_the_letter() -> None:
    """decode_raw_event named the extra field in its detail: the ESC of its name went into the letter
    as it was, and ``vigil deadletters ls`` wrote it to the operator's terminal; a name can be a
    patient's (PHI). The field is named "(unexpected field)"."""
    from vigil.schemas.normalize import decode_raw_event

    event = {"patient_id": "p1", "kind": "vital", "code": "HR", "value": 80, "unit": "bpm"}
    raw = json.dumps({**event, "observed_at": NOW.isoformat(), SEQUENCE: 1}).encode()
    rejected = decode_raw_event(raw, NOW)
    assert isinstance(rejected, Rejected) and rejected.reason == "schema"
    assert "\x1b" not in rejected.detail and "OWNED" not in rejected.detail
    assert rejected.detail.startswith("(unexpected field): ")
    letter = DeadLetter.of(rejected.at(Source("vigil.events.raw", 0, 5, b"p1", raw)), NOW)
    assert letter.detail == rejected.detail and letter.detail.isprintable()


def test_a_fhir_outcome_and_an_mllp_ack_quote_the_detail_escaped() -> None:
    from vigil.agents.mllp import outcome_of
    from vigil.schemas.codecs.fhir import decode_fhir
    from vigil.schemas.codecs.fhir_out import operation_outcome
    from vigil.schemas.codecs.mllp import Frame

    decoded = decode_fhir(json.dumps({"resourceType": "\x1b[41mX" + SEQUENCE}).encode())
    (issue,) = operation_outcome(decoded.rejected)["issue"]
    assert issue["diagnostics"].startswith("unsupported_resource: \\x1b[41mX") and "\x1b" not in issue["diagnostics"]
    message = b"MSH|^~\\&|A|B|C|D|20261205080000||QRY\x1b]0;X\x07^Q01|1|P|2.5.1\r"
    out = outcome_of(Frame(message), 10_000, NOW)
    assert out.code == "AE" and "x1b]0;X" in out.text and "\x1b" not in out.text and "\x07" not in out.text


def test_a_source_that_quotes_a_request_is_escaped_too() -> None:
    letter = DeadLetter.of(Rejected("schema", "x").at(Source("http:/fhir/\x1b[2J\nObservation")), NOW)
    assert letter.source_topic == "http:/fhir/\\x1b[2J\\nObservation"


def test_what_prints_stays_as_it_is() -> None:
    text = "code 'Fréquence cardiaque' from Unité de soins intensifs (Zürich) is not mapped: 心拍数"
    assert printable(text) == text
    assert Rejected("unmapped_code", text).detail == text
    # lines, tabs, a bidirectional override, a line separator, a lone surrogate: escaped as Python writes them
    assert printable("a\nb\tc\u202ed\u2028e\ud800") == "a\\nb\\tc\\u202ed\\u2028e\\ud800"


@given(st.text(max_size=200))
def test_any_detail_is_printable_once_escaped_and_escaping_twice_changes_nothing(text: str) -> None:
    once = printable(text)
    assert once.isprintable() and printable(once) == once
    assert Rejected("schema", text).detail == once
    # the letter stays JSON that parses back to the same detail (a lone surrogate once made it unwritable)
    letter = DeadLetter.of(Rejected("schema", text).at(Source("vigil.events.raw")), NOW)
    assert DeadLetter.model_validate_json(letter.model_dump_json()).detail == once[:MAX_DETAIL_CHARS]
