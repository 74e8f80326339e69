"""A treatment plan's clinical numbers are JSON numbers, as an event's value is (``schemas.events``):
pydantic's lax mode read ``"weight_kg": true`` as 1 kg (a 40 mL bolus then met 30 mL/kg) and
``"map_mmhg": "58"`` as a MAP of 58, where the published schema says ``"type": "number"``. A refused
plan's dead letter names the field, never the value sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from vigil.schemas.deadletter import invalid_record
from vigil.schemas.treatment import TreatmentPlan

ITEMS = [
    {"action": "lactate_ordered", "at": 5},
    {"action": "blood_culture", "at": 10},
    {"action": "antibiotic", "at": 30},
    {"action": "crystalloid_ml", "at": 20, "dose": {"value": 2100, "unit": "mL"}},
    {"action": "observation_set", "at": 0, "every_min": 15},
]
PLAN: dict[str, Any] = {
    "time_zero": "2026-12-07T08:00:00Z",
    "state": {"suspected_sepsis": True, "weight_kg": 70, "lactate_mmol_l": 4.5, "map_mmhg": 58, "sbp_mmhg": 82},
    "items": ITEMS,
}
# each number of the plan: where it is, and a valid value (as an int and as a float)
NUMBERS: dict[str, tuple[tuple[str | int, ...], int, float]] = {
    "weight_kg": (("state", "weight_kg"), 70, 70.5),
    "lactate_mmol_l": (("state", "lactate_mmol_l"), 4, 4.5),
    "map_mmhg": (("state", "map_mmhg"), 58, 58.5),
    "sbp_mmhg": (("state", "sbp_mmhg"), 82, 82.5),
    "dose.value": (("items", 3, "dose", "value"), 2100, 2100.5),
    "horizon_min": (("horizon_min",), 360, 360.5),
    "at": (("items", 2, "at"), 30, 30.5),
    "every_min": (("items", 4, "every_min"), 15, 15.5),
    "news2_at_min": (("state", "news2_at_min"), 0, 0.5),
    "hypotension_onset_min": (("state", "hypotension_onset_min"), 150, 150.5),
}


def with_value(path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    plan = json.loads(json.dumps(PLAN))
    *parents, last = path
    node = plan
    for part in parents:
        node = node[part]
    node[last] = value
    return plan


def validated(plan: dict[str, Any]) -> TreatmentPlan:
    return TreatmentPlan.model_validate_json(json.dumps(plan))


def read_back(plan: TreatmentPlan, path: tuple[str | int, ...]) -> Any:
    node: Any = plan
    for part in path:
        node = node[part] if isinstance(part, int) else getattr(node, part)
    return node


@pytest.mark.parametrize("sent", [True, False, "70", "58.5"])
@pytest.mark.parametrize("name", list(NUMBERS))
def test_a_boolean_or_a_string_is_no_clinical_number(name: str, sent: object) -> None:
    path = NUMBERS[name][0]
    plan = with_value(path, sent)
    with pytest.raises(ValidationError) as caught:
        validated(plan)
    detail = invalid_record(caught.value, "treatment plan").detail
    where = ".".join(str(p) for p in path)
    assert detail.startswith(f"treatment plan: {where}"), detail  # the field, for the sender to mend
    assert str(sent) not in detail  # never the value sent


@pytest.mark.parametrize("name", list(NUMBERS))
def test_json_integers_and_floats_are_numbers(name: str) -> None:
    path, whole, fraction = NUMBERS[name]
    for sent in (whole, fraction):
        plan = validated(with_value(path, sent))
        assert read_back(plan, path) == sent and isinstance(read_back(plan, path), float)


@pytest.mark.parametrize("sent", [True, "9", 9.0, 9.5])
def test_the_news2_total_is_a_json_integer(sent: object) -> None:
    with pytest.raises(ValidationError) as caught:
        validated(with_value(("state", "news2_total"), sent))
    assert invalid_record(caught.value, "treatment plan").detail.startswith("treatment plan: state.news2_total: ")
    assert validated(with_value(("state", "news2_total"), 9)).state.news2_total == 9


def test_a_weight_of_true_no_longer_meets_30_ml_per_kg_with_40_ml() -> None:
    """The review's case: ``true`` read as 1 kg, and a 40 mL bolus scored as the full 30 mL/kg."""
    plan = with_value(("state", "weight_kg"), True)
    plan["items"] = [*ITEMS[:3], {"action": "crystalloid_ml", "at": 20, "dose": {"value": 40, "unit": "mL"}}]
    with pytest.raises(ValidationError):
        validated(plan)


def test_a_number_in_a_string_is_not_read_as_a_time_either() -> None:
    """Minutes are strict, so a string goes on to the time branch: "30" was 30 s after 1970-01-01 there,
    and "1700000000" a time in 2023, read as Unix seconds."""
    for sent in ("30", "1700000000", " 30 "):
        with pytest.raises(ValidationError):
            validated(with_value(("items", 2, "at"), sent))
    at = read_back(validated(with_value(("items", 2, "at"), "2026-12-07T08:30:00Z")), ("items", 2, "at"))
    assert at.isoformat() == "2026-12-07T08:30:00+00:00"


def test_a_plans_flags_and_version_are_what_they_say() -> None:
    """``"suspected_sepsis": "no"`` read as false and ``1`` as true; ``"schema_version": 99`` was
    scored as version 1."""
    for path, value in (
        (("state", "suspected_sepsis"), "no"),
        (("state", "suspected_sepsis"), 1),
        (("state", "news2_single_parameter_3"), "yes"),
        (("state", "hypotension_after_fluids"), 0),
        (("schema_version",), 99),
        (("schema_version",), True),
        (("schema_version",), "1"),
    ):
        with pytest.raises(ValidationError):
            validated(with_value(path, value))
    assert validated(with_value(("schema_version",), 1)).state.suspected_sepsis is True
