"""The published JSON Schemas say what ``patient_id`` validation checks: 1-64 characters without
spaces (they said maxLength 256 for events and a plain string for treatment plans)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from vigil.schemas.events import PatientEvent, PatientId
from vigil.schemas.export import export_schemas
from vigil.schemas.treatment import TreatmentPlan

PATIENT_ID_KEYWORDS = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"^\S+$"}
PATIENT_ID = TypeAdapter(PatientId)


def _string_branch(prop: dict[str, Any]) -> dict[str, Any]:
    if "anyOf" in prop:  # optional: the string or null
        (prop,) = [p for p in prop["anyOf"] if p.get("type") == "string"]
    return {k: v for k, v in prop.items() if k in PATIENT_ID_KEYWORDS}


def test_the_exported_topic_schemas_give_patient_ids_their_checked_bounds(tmp_path: Path) -> None:
    export_schemas(tmp_path)
    for name in ("vigil.events.raw", "vigil.events", "vigil.treatment.requests"):
        schema = json.loads((tmp_path / f"{name}.schema.json").read_text())
        assert _string_branch(schema["properties"]["patient_id"]) == PATIENT_ID_KEYWORDS, name


def test_the_models_schemas_give_patient_ids_their_checked_bounds() -> None:
    assert _string_branch(PatientEvent.model_json_schema()["properties"]["patient_id"]) == PATIENT_ID_KEYWORDS
    assert _string_branch(TreatmentPlan.model_json_schema()["properties"]["patient_id"]) == PATIENT_ID_KEYWORDS


@pytest.mark.parametrize(("sent", "read"), [("p1", "p1"), (" MRN-0042 ", "MRN-0042"), ("a" * 64, "a" * 64)])
def test_a_patient_id_is_trimmed_then_checked(sent: str, read: str) -> None:
    assert PATIENT_ID.validate_python(sent) == read


@pytest.mark.parametrize(
    "sent",
    ["", "   ", "a" * 65, "p 1", "p\u00a0x", "p\u3000x", "p1\x1f", "\u202ep1", "p\u200b1", "\u202ep1".encode()],
)
def test_a_patient_id_outside_the_bounds_is_refused(sent: str | bytes) -> None:
    with pytest.raises(ValidationError):
        PATIENT_ID.validate_python(sent)
