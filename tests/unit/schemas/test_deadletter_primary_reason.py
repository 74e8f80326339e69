"""A letter of several reasons (``one_per_input``): shown, counted and alerted by the most actionable
one (``REASONS_MOST_ACTIONABLE_FIRST``), carrying every one (``DeadLetter.reasons``); and letters
written before ``reasons`` existed, and readers written before it, still work."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from vigil.schemas.codecs.fhir_out import _ISSUE_CODES
from vigil.schemas.deadletter import (
    DEADLETTER_SCHEMA_VERSION,
    REASONS_MOST_ACTIONABLE_FIRST,
    DeadLetter,
    Rejected,
    Source,
    one_per_input,
)

AT = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)


def test_every_documented_reason_is_ranked_once() -> None:
    assert len(REASONS_MOST_ACTIONABLE_FIRST) == len(set(REASONS_MOST_ACTIONABLE_FIRST))
    assert set(REASONS_MOST_ACTIONABLE_FIRST) == set(_ISSUE_CODES)  # docs/interop.md's table, held to it


def test_a_refused_value_outranks_a_part_vigil_would_not_have_read() -> None:
    parts = [Rejected("unmapped_code", "OBX[4]"), *[Rejected("clock_skew", "in the future")] * 3]
    letter = one_per_input(parts)
    assert letter.reason == "clock_skew" and letter.reasons == ("clock_skew", "unmapped_code")
    assert letter.detail.startswith("4 rejections: unmapped_code: OBX[4]; clock_skew: ")  # in the order found
    for unread in ("unmapped_code", "unsupported_resource", "not_final", "no_value"):
        for read in ("clock_skew", "unit", "out_of_range", "schema", "unknown_code", "too_large"):
            assert one_per_input([Rejected(unread), Rejected(read)]).reason == read


def test_the_order_is_the_tuples_whatever_the_order_found_and_ties_keep_the_first() -> None:
    assert one_per_input([Rejected("not_final"), Rejected("no_value")]).reasons == ("no_value", "not_final")
    assert one_per_input([Rejected("no_value"), Rejected("not_final")]).reasons == ("no_value", "not_final")
    # a reason the tuple does not name ranks after every named one; among themselves, as found
    assert one_per_input([Rejected("made_up"), Rejected("other_made_up")]).reasons == ("made_up", "other_made_up")
    assert one_per_input([Rejected("made_up"), Rejected("no_value")]).reason == "no_value"
    alone = Rejected("unit", "mg")
    assert one_per_input([alone]) is alone and alone.reasons == ("unit",)


def test_the_letter_carries_every_reason_primary_first() -> None:
    one = one_per_input([Rejected("unmapped_code"), Rejected("clock_skew"), Rejected("unit")])
    letter = DeadLetter.of(one.at(Source("vigil.ingest.hl7v2", original=b"MSH")), AT)
    data = json.loads(letter.model_dump_json())
    assert data["reason"] == "clock_skew" and data["reasons"] == ["clock_skew", "unit", "unmapped_code"]
    assert letter.refused_for(["unit"]) and letter.refused_for(["unmapped_code"]) and not letter.refused_for(["x"])


def previous_release_record(**fields: object) -> dict[str, object]:
    """A letter as the release before ``reasons`` wrote it (schema_version 3, no ``reasons``)."""
    return {
        "schema_version": 3,
        "reason": "clock_skew",
        "detail": "observed_at is in the future beyond the allowed skew",
        "source_topic": "vigil.ingest.hl7v2",
        "partition": 0,
        "offset": 7,
        "at": AT.isoformat(),
        "original_b64": base64.b64encode(b"MSH").decode(),
        **fields,
    }


def test_a_letter_written_without_reasons_reads_as_its_one_reason() -> None:
    letter = DeadLetter.model_validate_json(json.dumps(previous_release_record()))
    assert letter.reasons == ("clock_skew",) and letter.refused_for(["clock_skew"])
    # a list that left its primary out (written by hand) still leads with it, each reason once
    mixed = DeadLetter.model_validate(previous_release_record(reasons=["unit", "clock_skew", "unit"]))
    assert mixed.reasons == ("clock_skew", "unit")


class PreviousReleaseLetter(BaseModel):
    """How the release before ``reasons`` read a letter: pydantic's default, unknown fields ignored,
    no check of the version beyond its type (``schemas.deadletter`` at schema_version 3)."""

    model_config = ConfigDict(frozen=True)

    schema_version: int
    reason: str
    detail: str
    source_topic: str
    at: datetime
    original_b64: str


def test_a_reader_of_the_previous_release_reads_a_new_letter() -> None:
    one = one_per_input([Rejected("unmapped_code"), Rejected("clock_skew")])
    new = DeadLetter.of(one.at(Source("vigil.ingest.hl7v2", original=b"MSH")), AT).model_dump_json()
    old = PreviousReleaseLetter.model_validate_json(new)
    assert DEADLETTER_SCHEMA_VERSION == 3 and old.schema_version == 3  # a version it knows: not skipped
    assert old.reason == "clock_skew"


def test_a_letter_stays_hashable_with_its_reasons() -> None:
    """A frozen record with a list field cannot be hashed: the letter of the release before could."""
    rejected = one_per_input([Rejected("unmapped_code"), Rejected("clock_skew")])
    letter = DeadLetter.of(rejected.at(Source("vigil.ingest.hl7v2", 0, 1, None, b"x")), AT)
    assert hash(letter) == hash(DeadLetter.model_validate_json(letter.model_dump_json()))
