"""What a dead letter's replay sends, where, and what it never sends (``infra.deadletters``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vigil.infra.deadletters import (
    AUDIT_TYPE,
    DUPLICATE,
    MAX_RANGES_PER_RECORD,
    NO_ORIGINAL,
    NOT_AN_INPUT,
    STAY_ENDED,
    TRUNCATED,
    UNREADABLE,
    Letter,
    Replayed,
    Resend,
    as_ranges,
    fhir_payload,
    parse_letter,
    parse_since,
    replay_record,
    resend_of,
)
from vigil.schemas import topics
from vigil.schemas.deadletter import DeadLetter, Rejected, Source

AT = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
EVENT = b'{"patient_id":"p1","code":"HR","value":88}'


def letter(reason: str, topic: str, original: bytes = EVENT, budget: int | None = None, key: bytes = b"p1") -> Letter:
    rejected = Rejected(reason, "detail", Source(topic=topic, partition=0, offset=7, key=key, original=original))
    record = DeadLetter.of(rejected, AT, **({"budget": budget} if budget else {}))
    return parse_letter(2, 41, key, record.model_dump_json().encode())


@pytest.mark.parametrize(
    "topic", [topics.EVENTS_RAW, topics.INGEST_HL7V2, topics.TREATMENT_REQUESTS, topics.INGEST_FHIR]
)
def test_an_input_goes_back_where_it_came_in_under_its_key(topic: str) -> None:
    plan = resend_of(letter("internal", topic))
    assert plan == Resend(topic, b"p1", EVENT)


def test_the_mllp_listeners_letter_goes_to_the_hl7v2_agent() -> None:
    assert resend_of(letter("unmapped_code", "mllp", key=b"mllp")) == Resend(topics.INGEST_HL7V2, None, EVENT)


def test_what_is_never_sent_again() -> None:
    assert resend_of(letter("schema", topics.SCORES)) == NOT_AN_INPUT  # Vigil's own: acted on late
    assert resend_of(letter("schema", topics.ALERT_ACKS)) == NOT_AN_INPUT
    assert resend_of(letter("schema", "unknown")) == NOT_AN_INPUT
    assert resend_of(letter("duplicate", topics.EVENTS_RAW)) == DUPLICATE
    assert resend_of(letter("stay_ended", topics.EVENTS_RAW)) == STAY_ENDED  # refused again if sent
    assert resend_of(letter("too_large", topics.EVENTS_RAW, b"x" * 5000, budget=2000)) == TRUNCATED
    assert resend_of(letter("internal", topics.EVENTS_RAW, b"")) == NO_ORIGINAL
    unreadable = parse_letter(0, 1, None, b'{"reason": 3}')
    assert unreadable.letter is None and resend_of(unreadable) == UNREADABLE


def test_the_intakes_fhir_entry_goes_to_the_fhir_topic_as_a_bundle_of_one() -> None:
    entry = {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Observation", "id": "o1"}}
    plan = resend_of(letter("unit", "http:/fhir", json.dumps(entry).encode(), key=b"http-fhir"))
    assert isinstance(plan, Resend)
    assert plan.topic == topics.INGEST_FHIR and plan.key is None  # not every letter on one partition
    assert json.loads(plan.value) == {"resourceType": "Bundle", "type": "collection", "entry": [entry]}
    resource = json.dumps({"resourceType": "Observation", "id": "o1"}).encode()
    assert fhir_payload(resource) == resource  # a resource or a Bundle goes as it was
    assert fhir_payload(b"{not json") == b"{not json"  # refused again, with its reason


@given(st.binary(max_size=300))
def test_any_fhir_original_gives_bytes(original: bytes) -> None:
    assert isinstance(fhir_payload(original), bytes)


@given(st.lists(st.integers(0, 500), max_size=200))
def test_offset_runs_hold_exactly_the_offsets(offsets: list[int]) -> None:
    runs = as_ranges(offsets)
    assert [o for a, b in runs for o in range(a, b + 1)] == sorted(set(offsets))
    assert all(b + 1 < c for (_, b), (c, _) in zip(runs, runs[1:], strict=False))  # maximal runs


def test_the_audit_record_says_which_letters_were_sent_and_a_later_replay_skips_them() -> None:
    sent = [(0, 3), (0, 4), (0, 5), (0, 9), (2, 41)]
    records = replay_record(sent, ["internal"], AT)
    assert records == [
        {
            **{k: records[0][k] for k in ("by", "host", "pid")},
            "type": AUDIT_TYPE,
            "at": AT.isoformat(),
            "reasons": ["internal"],
            "sent": 5,
            "letters": {"0": [[3, 5], [9, 9]], "2": [[41, 41]]},
        }
    ]
    before = Replayed.from_records(json.loads(json.dumps(records)) + [{"type": "config_change"}])
    assert all(c in before for c in sent)
    assert (0, 6) not in before and (1, 4) not in before and (2, 40) not in before


def test_a_large_replay_is_recorded_in_records_of_bounded_size() -> None:
    sent = [(0, 2 * i) for i in range(MAX_RANGES_PER_RECORD + 5)]  # no two offsets adjacent
    records = replay_record(sent, ["internal"])
    assert [r["sent"] for r in records] == [MAX_RANGES_PER_RECORD, 5]
    assert all(len(json.dumps(r)) < 1_000_000 for r in records)
    before = Replayed.from_records(records)
    assert all(c in before for c in sent)
    assert not any((0, 2 * i + 1) in before for i in range(MAX_RANGES_PER_RECORD + 5))


def test_since_takes_a_time_or_an_age() -> None:
    now = AT
    assert parse_since("90m", now) == now - timedelta(minutes=90)
    assert parse_since("6h", now) == now - timedelta(hours=6)
    assert parse_since("2d", now) == now - timedelta(days=2)
    assert parse_since("2026-12-05T08:00") == AT  # UTC unless it says otherwise
    assert parse_since("2026-12-05T09:00+01:00") == AT
    for bad in ("yesterday", "6", "h", "-3h", ""):
        with pytest.raises(ValueError, match="--since takes"):
            parse_since(bad, now)


@given(st.text(max_size=40))
def test_since_answers_any_text_with_a_time_or_one_error(text: str) -> None:
    try:
        at = parse_since(text, AT)
    except ValueError as exc:
        assert "--since takes" in str(exc)
    else:
        assert at.tzinfo is not None


@pytest.mark.parametrize("copy", ["abc", "@@@@", "aGk"])
def test_a_letter_whose_copy_is_not_base64_is_unreadable_not_an_error(copy: str) -> None:
    """It validated, and ``original()`` then raised binascii.Error: ``ls`` and ``replay`` ended
    with "unexpected Error" at that letter, the letters after it never read."""
    record = {"reason": "unknown_code", "detail": "", "source_topic": topics.EVENTS_RAW, "at": AT.isoformat()}
    item = parse_letter(0, 3, b"p1", json.dumps({**record, "original_b64": copy}).encode())
    assert item.letter is None and resend_of(item) == UNREADABLE


def test_a_letter_whose_key_was_replaced_by_its_digest_is_not_sent_under_it() -> None:
    from vigil.infra.deadletters import KEY_REPLACED
    from vigil.schemas.deadletter import dead_letter_key

    big = b"k" * 5000
    rejected = Rejected(
        "internal", "x", Source(topic=topics.EVENTS_RAW, partition=0, offset=7, key=big, original=EVENT)
    )
    record = DeadLetter.of(rejected, AT).model_dump_json().encode()
    assert resend_of(parse_letter(2, 41, dead_letter_key(big), record)) == KEY_REPLACED


def timed_letter(partition: int, offset: int, written: datetime) -> Letter:
    rejected = Rejected("unknown_code", "x", Source(topic=topics.EVENTS_RAW, original=EVENT))
    return parse_letter(partition, offset, b"p1", DeadLetter.of(rejected, written).model_dump_json().encode())


def test_a_letter_written_after_the_replay_that_named_its_place_was_not_sent_by_it() -> None:
    """A topic deleted and created again gives its new letters the places an earlier replay named:
    by place alone they were skipped as replayed_before, never sent."""
    first, second = AT, AT + timedelta(days=2)
    records = replay_record([(0, 3), (0, 4)], ["unknown_code"], first)
    records += replay_record([(0, 4), (1, 9)], ["unknown_code"], second)
    before = Replayed.from_records(json.loads(json.dumps(records)))
    assert before.sent(timed_letter(0, 3, first - timedelta(minutes=5)))  # the letter the first replay sent
    assert before.sent(timed_letter(0, 3, first))
    assert not before.sent(timed_letter(0, 3, first + timedelta(hours=1)))  # a new letter at its old place
    assert before.sent(timed_letter(0, 4, first + timedelta(hours=1)))  # the second replay sent it
    assert not before.sent(timed_letter(0, 4, second + timedelta(seconds=1)))
    assert not before.sent(timed_letter(0, 5, first - timedelta(days=1)))  # a place no replay named
    assert not before.sent(timed_letter(2, 3, first - timedelta(days=1)))
    naive = timed_letter(1, 9, (second - timedelta(hours=1)).replace(tzinfo=None))  # written naive: UTC
    assert before.sent(naive)
    assert (0, 3) in before and (1, 9) in before and (0, 5) not in before  # ``in`` asks the place only


def test_an_audit_record_without_a_time_still_names_its_places() -> None:
    """An audit record whose ``at`` is missing or does not parse keeps what it said before: every
    letter at its places counts as sent."""
    record = replay_record([(0, 3)], ["unknown_code"], AT)[0]
    without_time = {k: v for k, v in record.items() if k != "at"}
    untimed = [without_time, {**record, "at": "yesterday", "letters": {"0": [[7, 8]]}}]
    before = Replayed.from_records(untimed)
    later = AT + timedelta(days=30)
    assert before.sent(timed_letter(0, 3, later)) and before.sent(timed_letter(0, 8, later))
    assert not before.sent(timed_letter(0, 5, later))
    unreadable = parse_letter(0, 3, None, b'{"reason": 3}')
    assert Replayed.from_records([record]).sent(unreadable)  # no time to tell by: its place decides
    assert not Replayed({}).sent(timed_letter(0, 3, AT))
