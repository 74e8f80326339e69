"""Strict vitals and identifiers (issue 16): values are JSON numbers, times after the floor,
identifiers without control, bidi-override or zero-width characters; every refusal is a
``schema`` dead letter, and the raw-event parser never raises whatever the bytes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigil.schemas.deadletter import Rejected
from vigil.schemas.events import EARLIEST_OBSERVATION, HIDDEN_CATEGORIES, PatientEvent, hidden_character
from vigil.schemas.normalize import decode_raw_event

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
BASE = {
    "patient_id": "p-1",
    "observed_at": "2026-06-01T11:00:00Z",
    "kind": "vital",
    "code": "HR",
    "value": 80,
    "unit": "/min",
}
IDENTIFIERS = ("patient_id", "encounter", "ward", "source", "event_id", "code", "unit")


def decode(**changes: object) -> PatientEvent | Rejected:
    return decode_raw_event(json.dumps({**BASE, **changes}).encode(), NOW)


@pytest.mark.parametrize("value", [True, False, "8_5", "85", "fast", None, [80], {"v": 80}])
def test_value_must_be_a_json_number(value: object) -> None:
    out = decode(value=value)
    assert isinstance(out, Rejected) and out.reason == "schema", out
    assert out.detail.startswith("value:")


@pytest.mark.parametrize("value", [80, 80.5, 1.2e2])
def test_numbers_are_accepted(value: float) -> None:
    out = decode(value=value)
    assert isinstance(out, PatientEvent) and out.value == float(value)


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00Z", "1970-01-01T00:00:00Z", "1989-12-31T23:59:59Z", "1900-06-01T00:00:00+01:00"]
)
def test_observation_times_before_the_floor_are_refused(when: str) -> None:
    out = decode(observed_at=when)
    assert isinstance(out, Rejected) and out.reason == "schema", out
    assert "1990-01-01" in out.detail


def test_epoch_zero_as_a_number_is_refused_too() -> None:
    out = decode(observed_at=0)
    assert isinstance(out, Rejected) and out.reason == "schema"


def test_the_floor_itself_and_the_future_skew() -> None:
    assert datetime(1990, 1, 1, tzinfo=UTC) == EARLIEST_OBSERVATION
    # the floor is a schema rule; a date after now + skew stays clock_skew (normalize)
    assert isinstance(decode(observed_at="1990-01-01T00:00:00Z"), PatientEvent)
    out = decode(observed_at="2026-06-02T12:00:00Z")
    assert isinstance(out, Rejected) and out.reason == "clock_skew"


SPOOFS = {
    "rlo": "\u202e",
    "lro": "\u202d",
    "isolate": "\u2066",
    "zwsp": "\u200b",
    "zwj": "\u200d",
    "bom": "\ufeff",
    "nul": "\x00",
    "esc": "\x1b",
    "del": "\x7f",
    "tab": "\t",
    "line_separator": "\u2028",
}


@pytest.mark.parametrize("field", IDENTIFIERS)
@pytest.mark.parametrize("name", sorted(SPOOFS))
def test_identifiers_refuse_hidden_characters(field: str, name: str) -> None:
    value = {"code": "HR", "unit": "/min"}.get(field, "abc")
    out = decode(**{field: value + SPOOFS[name] + "x"})
    assert isinstance(out, Rejected) and out.reason == "schema", (field, name, out)
    assert out.detail.startswith(f"{field}:")
    assert f"U+{ord(SPOOFS[name]):04X}" in out.detail
    assert "abc" not in out.detail  # the identifier itself never reaches the dead letter's detail


def test_the_dashboard_spoof_from_the_issue_is_refused() -> None:
    out = decode(patient_id="\u202eLIAMS-nhoJ")
    assert isinstance(out, Rejected) and out.reason == "schema" and "U+202E" in out.detail


@pytest.mark.parametrize("ward", ["Ward 3 Nord", "Réanimation", "ICU-Ⅱ", "病棟5"])
def test_ordinary_names_with_spaces_and_letters_pass(ward: str) -> None:
    out = decode(ward=ward)
    assert isinstance(out, PatientEvent) and out.ward == ward


@settings(max_examples=300, deadline=None)
@given(
    st.text(min_size=1, max_size=20),
    st.characters(categories=sorted(HIDDEN_CATEGORIES)),  # type: ignore[arg-type]
    st.sampled_from(IDENTIFIERS),
)
def test_any_hidden_character_anywhere_is_refused(prefix: str, hidden: str, field: str) -> None:
    out = decode(**{field: prefix + hidden})
    assert isinstance(out, Rejected)
    assert hidden_character(prefix + hidden) is not None


JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*BASE, *IDENTIFIERS, "extra"]), JSONISH, max_size=10))
def test_parser_never_raises_and_accepts_only_clean_events(fields: dict[str, object]) -> None:
    try:
        payload = json.dumps({**BASE, **fields}).encode()
    except ValueError:
        return
    out = decode_raw_event(payload, NOW)
    if isinstance(out, Rejected):
        assert out.reason and isinstance(out.detail, str)
        return
    assert isinstance(out.value, float) and not isinstance(fields.get("value"), bool)
    assert out.observed_at >= EARLIEST_OBSERVATION
    for field in IDENTIFIERS:
        text = getattr(out, field)
        assert text is None or hidden_character(text) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_parser_never_raises_on_arbitrary_bytes(payload: bytes) -> None:
    assert isinstance(decode_raw_event(payload, NOW), PatientEvent | Rejected)


def test_a_byte_order_mark_before_an_event_is_skipped_as_the_other_decoders_skip_it() -> None:
    """A UTF-8 byte-order mark (a file saved by a Windows editor, then produced) made the whole event
    invalid_json; the FHIR and HL7v2 decoders skip it. A second mark is no JSON."""
    plain = json.dumps(BASE).encode()
    out = decode_raw_event(b"\xef\xbb\xbf" + plain, NOW)
    assert isinstance(out, PatientEvent) and out.value == 80.0 and out.code == "HR"
    without = decode_raw_event(plain, NOW)  # the id derived from the bytes: the same copy, mark or not
    assert isinstance(without, PatientEvent) and out.event_id == without.event_id
    twice = decode_raw_event(b"\xef\xbb\xbf\xef\xbb\xbf" + plain, NOW)
    assert isinstance(twice, Rejected) and twice.reason == "invalid_json"
