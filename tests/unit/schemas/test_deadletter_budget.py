"""Every dead letter fits its byte budget whatever the reason and the original's size (issue 16):
a 900 kB event once made a 1.2 MB dead letter the producer refused, crashing the agent."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil.schemas.deadletter import MAX_DEAD_LETTER_BYTES, DeadLetter, Rejected, Source
from vigil.schemas.normalize import MAX_EVENT_BYTES

AT = datetime(2026, 6, 1, tzinfo=UTC)


def letter(original: bytes, reason: str = "too_large", detail: str = "d", budget: int = MAX_DEAD_LETTER_BYTES) -> bytes:
    rejected = Rejected(reason, detail).at(Source("vigil.events.raw", 3, 42, b"key", original))
    return DeadLetter.of(rejected, AT, budget=budget).model_dump_json().encode()


def test_budget_is_well_under_the_producer_limit_and_keeps_accepted_sizes_whole() -> None:
    assert MAX_DEAD_LETTER_BYTES <= 1_000_000 // 4
    whole = json.loads(letter(b"x" * MAX_EVENT_BYTES, reason="schema"))
    assert not whole["truncated"] and base64.b64decode(whole["original_b64"]) == b"x" * MAX_EVENT_BYTES


def test_a_900_kb_original_is_truncated_with_its_size_and_hash() -> None:
    original = b'{"ward": "' + b"W" * 900_000 + b'"}'
    record = letter(original)
    assert len(record) <= MAX_DEAD_LETTER_BYTES
    data = json.loads(record)
    kept = base64.b64decode(data["original_b64"])
    assert data["truncated"] is True and original.startswith(kept) and len(kept) > 60_000
    assert data["original_size"] == len(original)
    assert data["original_sha256"] == hashlib.sha256(original).hexdigest()
    assert DeadLetter.model_validate_json(record).digest() == hashlib.sha256(original).hexdigest()


@pytest.mark.parametrize("reason", ["internal", "schema", "duplicate", "invalid_json", "x" * 500])
def test_every_reason_is_bounded_even_with_a_huge_detail(reason: str) -> None:
    record = letter(b"\xff" * 2_000_000, reason=reason, detail="é" * 100_000)
    assert len(record) <= MAX_DEAD_LETTER_BYTES


def test_a_zero_budget_keeps_only_size_and_hash() -> None:
    data = json.loads(letter(b"abc" * 1000, budget=0))
    assert data["original_b64"] == "" and data["truncated"] and data["original_size"] == 3000


def test_version_one_records_still_read() -> None:
    old = {
        "schema_version": 1,
        "reason": "schema",
        "detail": "",
        "source_topic": "t",
        "at": AT.isoformat(),
        "original_b64": base64.b64encode(b"abc").decode(),
    }
    dead = DeadLetter.model_validate(old)
    assert dead.original() == b"abc" and dead.digest() == hashlib.sha256(b"abc").hexdigest()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 3_000_000), st.integers(0, 300_000), st.text(max_size=2000))
def test_any_size_fits_any_budget_it_can(size: int, budget: int, detail: str) -> None:
    original = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    record = letter(original, detail=detail, budget=budget)
    data = json.loads(record)
    assert len(record) <= max(budget, len(letter(original, detail=detail, budget=0)))
    assert data["original_size"] == size and original.startswith(base64.b64decode(data["original_b64"]))
    assert data["truncated"] == (len(base64.b64decode(data["original_b64"])) < size)


def test_a_key_near_a_megabyte_is_replaced_by_its_digest_and_counts_in_the_budget() -> None:
    """A ~1 MB record key made the dead letter (key + value) larger than the producer's 1 MB even
    without its original: the agent retried it forever, its partition stalled behind it."""
    from vigil.schemas.deadletter import MAX_DEAD_LETTER_KEY_BYTES, dead_letter_key

    big = b"k" * 999_800
    rejected = Rejected("invalid_json", "x").at(Source("vigil.events.raw", 0, 1, big, b"x" * 200_000))
    dead = DeadLetter.of(rejected, AT)
    key = dead_letter_key(big)
    assert key == hashlib.sha256(big).hexdigest().encode() and len(key) <= MAX_DEAD_LETTER_KEY_BYTES
    assert dead.key_size == len(big) and dead.key_sha256 == key.decode()
    assert len(key) + len(dead.model_dump_json().encode()) <= MAX_DEAD_LETTER_BYTES
    # an ordinary key (a patient id) stays as it was, and the letter says nothing of it
    assert dead_letter_key(b"p1") == b"p1" and dead_letter_key(None) is None
    small = DeadLetter.of(Rejected("schema", "x").at(Source("vigil.events.raw", 0, 1, b"p1", b"{}")), AT)
    assert small.key_size is None and small.key_sha256 is None


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 3_000), st.integers(0, 200_000), st.integers(0, 300_000))
def test_key_and_letter_together_fit_the_budget(key_size: int, size: int, budget: int) -> None:
    from vigil.schemas.deadletter import dead_letter_key

    key = b"k" * key_size
    rejected = Rejected("schema", "d").at(Source("vigil.events.raw", 0, 1, key, b"o" * size))
    floor = DeadLetter.of(rejected, AT, budget=0)  # the letter without its original: the least it can be
    record = DeadLetter.of(rejected, AT, budget=budget)
    total = len(dead_letter_key(key) or b"") + len(record.model_dump_json().encode())
    assert total <= max(budget, len(dead_letter_key(key) or b"") + len(floor.model_dump_json().encode()))


def test_a_copy_that_is_not_base64_is_not_a_letter() -> None:
    from pydantic import ValidationError

    base = {"reason": "schema", "detail": "", "source_topic": "t", "at": AT.isoformat()}
    for bad in ("abc", "@@@@", "aGk=x"):
        with pytest.raises(ValidationError, match="base64"):
            DeadLetter.model_validate({**base, "original_b64": bad})
    assert DeadLetter.model_validate({**base, "original_b64": "aGk="}).original() == b"hi"
