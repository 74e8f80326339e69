"""An answer's ``schema_version`` is absent or the integer 1, as docs/integration.md says: null was
read (and the exported JSON Schema allowed it). Absent reads as 1, and Vigil's own answers still leave
it out, so a worker of the release before, whose ``AlertAck`` forbids the field, reads them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from vigil.schemas.alerts import AlertAck

ANSWER = {
    "alert_id": "a1",
    "patient_id": "p1",
    "action": "acknowledge",
    "by": "rn",
    "at": datetime.now(UTC).isoformat(),
}


def test_null_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        AlertAck.model_validate_json(json.dumps({**ANSWER, "schema_version": None}))
    assert [e["loc"] for e in caught.value.errors()] == [("schema_version",)]


def test_absent_reads_as_1_and_is_left_out_of_what_vigil_publishes() -> None:
    answer = AlertAck.model_validate_json(json.dumps(ANSWER))
    assert answer.schema_version == 1
    assert "schema_version" not in json.loads(answer.model_dump_json())
    built = AlertAck(alert_id="a1", patient_id="p1", action="acknowledge", by="rn", at=datetime.now(UTC))
    assert built.schema_version == 1 and "schema_version" not in built.model_dump()


def test_the_exported_schema_says_1_and_not_null() -> None:
    field = AlertAck.model_json_schema()["properties"]["schema_version"]
    assert field.get("const") == 1 and field.get("default") == 1 and "anyOf" not in field
