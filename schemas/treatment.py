"""Treatment plans and their guideline scores (``vigil plan score``, ``vigil.treatment.scores``).

A ``TreatmentPlan`` is a patient's state at sepsis recognition (*time zero*) plus the care given or
proposed (items with times and doses). ``models.treatment`` scores it against the Surviving Sepsis
Campaign hour-1 bundle and the NEWS2 clinical response and returns a ``TreatmentScore``. The plan's
JSON Schema is published at ``docs/schemas/treatment-plan.schema.json`` (``vigil plan schema``).
Versioned: fields are only ever added; ``schema_version`` is bumped on any change of meaning.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, StrictBool, model_validator
from pydantic_core import PydanticCustomError

from vigil.schemas.codes import TREATMENTS
from vigil.schemas.events import Identifier, PatientId, SchemaVersion1
from vigil.schemas.scores import News2Band
from vigil.schemas.times import UtcDatetime

TREATMENT_SCHEMA_VERSION: Final = 1
TREATMENT_SCORE_SCHEMA_VERSION = 2
PLAN_SCHEMA_PATH = Path("docs/schemas/treatment-plan.schema.json")

TreatmentAction = Literal[
    "antibiotic",
    "blood_culture",
    "lactate_ordered",
    "crystalloid_ml",
    "vasopressor",
    "oxygen",
    "clinician_review",
    "observation_set",
    "weight_kg",
]
ItemStatus = Literal["met", "late", "missing", "not_applicable", "pending"]
ChangeKind = Literal["add", "move_earlier", "adjust_dose"]
ReviewerRole = Literal["ward_clinician", "critical_care"]


# Bounds inside Annotated (not on the Optional field) so the JSON Schema gets real keywords
# (minimum, maximum), and NaN/inf fail the comparison. Strict, as an event's value
# (``schemas.events.FiniteFloat``): a JSON number only, an integer too; ``true`` was a weight of 1 kg
# (a 40 mL bolus then met 30 mL/kg) and "58" a MAP of 58, where the published schema says number.
WeightKg = Annotated[float, Strict(), Field(ge=0.3, le=500.0)]
LactateMmolL = Annotated[float, Strict(), Field(ge=0.0, le=40.0)]
MapMmhg = Annotated[float, Strict(), Field(ge=0.0, le=300.0)]
SbpMmhg = Annotated[float, Strict(), Field(ge=0.0, le=350.0)]
News2Total = Annotated[int, Strict(), Field(ge=0, le=20)]  # 3.0 and true are no NEWS2 total either
# At least 5 minutes: a monitor's set every few seconds is continuous monitoring all the same (<= 15 min,
# docs/treatment.md), and every 0.01 min over a week was a million observation sets to score.
REPEAT_MIN_FLOOR = 5.0
RepeatMin = Annotated[float, Strict(), Field(ge=REPEAT_MIN_FLOOR, le=1440.0)]
# The most observation-set times (repeats expanded to the horizon) and other items one plan may hold:
# a week of sets every 5 min is 2,017; scoring and the suggestion search cost grows with it.
MAX_PLAN_POINTS = 10_000


def _not_a_number(value: object) -> object:
    """A number is never a time here (pydantic reads one as Unix seconds: 527,041 minutes, past the
    year a plan spans, would become 1970-01-07), nor is a number in a string: minutes are strict
    (``PlanMinutes``), so "30" comes here, and was 30 s after 1970-01-01."""
    if isinstance(value, int | float) or (isinstance(value, str) and _reads_as_a_number(value)):
        raise ValueError("minutes after time_zero are a JSON number within a year of it, not a string")
    return value


def _reads_as_a_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# Years a plan's time zero may fall in: far inside datetime's range (years 1-9999), whatever a plan's
# items, horizon and ward zone add to it.
TIME_ZERO_YEARS = (1900, 9000)


def _time_zero_in_range(value: datetime) -> datetime:
    """A time zero the plan's times can be counted from: its items reach a year either side of it
    (``PlanMinutes``) and its suggestions are written as times, so 9999-12-31T23:00Z overflowed while
    the suggestions were timed (an ``internal`` dead letter, and the plan's fault). The message names
    the rule, never the value sent (it goes into dead letters)."""
    if not TIME_ZERO_YEARS[0] <= value.year <= TIME_ZERO_YEARS[1]:
        raise PydanticCustomError(
            "datetime_out_of_range",
            "a time zero must fall within the years {low}-{high}",
            {"low": TIME_ZERO_YEARS[0], "high": TIME_ZERO_YEARS[1]},
        )
    return value


TimeZero = Annotated[UtcDatetime, AfterValidator(_time_zero_in_range)]

# A number is minutes after time zero, within a year of it (a plan is for one stay; 1e308 minutes
# is past any date); a string is an ISO 8601 time with a timezone.
PLAN_SPAN_MIN = 366 * 24 * 60.0
PlanMinutes = Annotated[float, Strict(), Field(ge=-PLAN_SPAN_MIN, le=PLAN_SPAN_MIN, allow_inf_nan=False)]
ItemTime = Annotated[
    PlanMinutes | Annotated[UtcDatetime, BeforeValidator(_not_a_number)],
    Field(
        union_mode="left_to_right",
        description="minutes after time_zero (number, may be negative), or an ISO 8601 time with a "
        "timezone (then the plan needs time_zero)",
    ),
]


class Dose(BaseModel):
    """A dose in the canonical unit of its action (``schemas.codes.TREATMENTS``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    value: float = Field(
        ge=0.0,
        allow_inf_nan=False,
        strict=True,  # a JSON number: true was a 1 mL bolus, "2100" a 2,100 mL one (``WeightKg``)
        description="e.g. total mL for crystalloid_ml, ug/kg/min for vasopressor",
    )
    unit: str = Field(min_length=1, max_length=32, description="the action's canonical unit (mL, ug/kg/min, kg...)")


class TreatmentItem(BaseModel):
    """One treatment given or proposed, at one time (optionally repeating: observation sets)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: TreatmentAction
    at: ItemTime
    dose: Dose | None = None
    every_min: RepeatMin | None = Field(
        default=None,
        description="observation_set only: repeat every N minutes from `at` to the end of the horizon "
        "(<= 15 counts as continuous monitoring)",
    )
    role: ReviewerRole | None = Field(
        default=None, description="clinician_review only: who reviewed (critical_care for NEWS2 >= 7)"
    )
    note: str | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _check_dose_and_fields(self) -> Self:
        unit, (low, high) = TREATMENTS[self.action]
        if self.dose is not None:
            # the messages name the rule, never the value sent (they go into dead letters)
            if self.dose.unit != unit:
                raise ValueError(f"{self.action} dose must be in {unit!r}")
            if not low <= self.dose.value <= high:
                raise ValueError(f"{self.action} dose must be within {low:g}-{high:g} {unit}")
        if self.action in ("crystalloid_ml", "weight_kg") and self.dose is None:
            raise ValueError(f"{self.action} needs a dose ({unit})")
        if self.every_min is not None and self.action != "observation_set":
            raise ValueError("every_min is only for observation_set")
        if self.role is not None and self.action != "clinician_review":
            raise ValueError("role is only for clinician_review")
        return self


class PatientState(BaseModel):
    """What is known about the patient at time zero (sepsis recognition or the NEWS2 trigger)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weight_kg: WeightKg | None = None
    lactate_mmol_l: LactateMmolL | None = Field(
        default=None, description="initial lactate (taken as measured at time zero)"
    )
    map_mmhg: MapMmhg | None = None
    sbp_mmhg: SbpMmhg | None = None
    suspected_sepsis: StrictBool = False
    sepsis_likelihood: Literal["possible", "probable"] = Field(
        default="probable",
        description="SSC 2021: probable sepsis or possible shock -> antibiotics within 1 h; "
        "possible sepsis without shock -> within 3 h",
    )
    hypotension_after_fluids: StrictBool | None = Field(
        default=None,
        description="below the MAP target (MAP < 65; SBP < 90 where MAP is unknown) during or after fluids: "
        "true makes the vasopressor apply even when time zero's MAP met the target; false: every reading "
        "after fluids at target (vasopressor not applicable); unknown (null) = assume it persists when below "
        "the target at time zero, and true when hypotension_onset_min is given",
    )
    news2_total: News2Total | None = None
    news2_band: News2Band | None = None
    news2_single_parameter_3: StrictBool = False
    # added in place (schema_version 1; 0 reads as before): the streaming care score's time zero is
    # sepsis recognition, and the NEWS2 response answers the NEWS2 score that triggered it, which may
    # be hours before (or, a rise to a higher band, after) it
    news2_at_min: PlanMinutes = Field(
        default=0.0,
        description="minutes after time_zero of the NEWS2 score the news2_* fields describe (the "
        "observation set the NEWS2 clinical response answers); 0: at time zero",
    )
    # added in place (schema_version 1; absent reads as before): SSC 2018 asks for vasopressors "if
    # hypotensive during or after fluid resuscitation", so a MAP that met the target at time zero and
    # fell below it after fluids hours later starts the vasopressor's hour then, not at time zero
    hypotension_onset_min: PlanMinutes | None = Field(
        default=None,
        description="minutes after time_zero of the first reading below the MAP target during or after "
        "fluids; for a patient at the target at time zero the vasopressor is due within 1 h of it, and one "
        "given within 2 h before it is taken as running (null, or below the target at time zero: due within "
        "1 h of time zero). Means hypotension_after_fluids is true: null is read so, false is refused",
    )

    @model_validator(mode="before")
    @classmethod
    def _an_onset_is_hypotension_after_fluids(cls, data: Any) -> Any:
        """An onset is a reading below the target during or after fluids: with it, an unknown
        ``hypotension_after_fluids`` is known (true). It was silently ignored instead, and the
        vasopressor scored not applicable (100 with no pressor for a fall at T+150)."""
        onset_given = isinstance(data, dict) and data.get("hypotension_onset_min") is not None
        if onset_given and data.get("hypotension_after_fluids") is None:
            return {**data, "hypotension_after_fluids": True}
        return data

    @model_validator(mode="after")
    def _no_onset_without_hypotension(self) -> Self:
        if self.hypotension_onset_min is not None and self.hypotension_after_fluids is False:
            # the message names the fields, never the values sent (it goes into dead letters)
            raise PydanticCustomError(
                "onset_without_hypotension",
                "hypotension_onset_min is a fall below the MAP target during or after fluids, and "
                "hypotension_after_fluids false says there was none: send one or the other",
            )
        return self


class TreatmentPlan(BaseModel):
    """A patient's state plus the treatments given or proposed (the ``vigil plan score`` input)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"$id": "https://vigil.example/schemas/treatment-plan.schema.json"},
    )

    schema_version: SchemaVersion1 = TREATMENT_SCHEMA_VERSION  # version 1 is the only one: another is refused
    patient_id: PatientId | None = None
    # added in place (schema_version 1): the caller's id for this request, copied to the score
    request_id: Identifier | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="the caller's id for this request; the score on vigil.treatment.scores carries it back",
    )
    time_zero: TimeZero | None = Field(
        default=None, description="sepsis recognition time; offsets in items count from it"
    )
    horizon_min: float = Field(
        default=360.0, gt=0.0, le=7 * 24 * 60, strict=True, description="minutes after time zero the plan covers"
    )
    state: PatientState
    items: list[TreatmentItem] = Field(default_factory=list, max_length=500)

    @model_validator(mode="after")
    def _absolute_times_need_time_zero(self) -> Self:
        if self.time_zero is None and any(isinstance(i.at, datetime) for i in self.items):
            raise ValueError("items with absolute times need the plan's time_zero")
        points = plan_points(self)
        if points > MAX_PLAN_POINTS:
            # its own error type: the treatment agent dead-letters it as ``too_large``
            raise PydanticCustomError(
                "too_large",
                "the plan's items come to {points} times to score (observation sets repeated every "
                "every_min to horizon_min), more than the {limit} a plan may hold",
                {"points": points, "limit": MAX_PLAN_POINTS},
            )
        return self


def _minutes(plan: TreatmentPlan, at: float | datetime) -> float:
    if isinstance(at, datetime):
        assert plan.time_zero is not None  # checked first
        return (at - plan.time_zero).total_seconds() / 60.0
    return at


def plan_points(plan: TreatmentPlan) -> int:
    """How many item times scoring ``plan`` expands (``models.treatment.timeline``): one per item, an
    observation set with ``every_min`` one per repeat from its time up to the horizon. Counted, not
    expanded, so a plan too large to score is refused in microseconds."""
    points = 0
    for item in plan.items:
        if item.every_min is None:
            points += 1
            continue
        at = _minutes(plan, item.at)
        if at <= plan.horizon_min:
            points += int((plan.horizon_min - at) // item.every_min) + 1
    return points


class CareItemResult(BaseModel):
    """One guideline item's verdict for this patient."""

    model_config = ConfigDict(frozen=True)

    name: str
    status: ItemStatus
    detail: str
    source: str
    weight: float  # points this item is worth before normalization (docs/treatment.md)
    credit: float = Field(ge=0.0, le=1.0)  # 1 met, 0 missing, partial when late or under-dosed
    due_min: float | None = None  # when it falls (fell) due, minutes after time zero


class PlanSuggestion(BaseModel):
    """One change to the plan and what it gains (score after minus score before, in points)."""

    model_config = ConfigDict(frozen=True)

    change: str
    kind: ChangeKind
    item: TreatmentItem  # the new or changed item
    replaces: int | None = None  # index in the plan's items of the item it changes (None: added)
    addresses: str  # the guideline item it improves most
    gain: float  # the points it recovers: score after minus score before (never past 100 in total)
    score_after: float
    at_min: float | None = None  # when to do it, minutes after time zero (never before now)
    at: datetime | None = None  # the same as a time (when the plan has a time zero)
    due_min: float | None = None  # when the item it addresses falls (fell) due
    due: datetime | None = None
    from_min: float | None = None  # move/adjust: when the item it changes was planned
    from_at: datetime | None = None


CareStatus = Literal["scored", "nothing_due", "not_applicable"]


class TreatmentScore(BaseModel):
    """How well the care matches the guidelines that apply (``vigil.treatment.scores``)."""

    model_config = ConfigDict(frozen=True)

    # 2: ``score`` may be null (not applicable / nothing due yet) and means "share of due items on time"
    schema_version: int = TREATMENT_SCORE_SCHEMA_VERSION
    patient_id: str | None = None
    # the care score (docs/treatment.md): the weighted share of the guideline items due so far that
    # were done on time; None when no pathway is triggered or nothing is due yet (see ``status``)
    score: float | None = Field(default=None, ge=0.0, le=100.0)
    status: CareStatus = "scored"
    pathways: list[str] = Field(default_factory=list)  # e.g. "sepsis hour-1 bundle"
    items_due: int = 0
    items_on_time: int = 0
    time_zero: datetime | None = None
    items: list[CareItemResult]
    suggestions: list[PlanSuggestion] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    as_of_min: float | None = None  # streaming: minutes after time zero the care was judged at
    # streaming: the score the care so far reaches by the end of the plan horizon if nothing more
    # is done (pending items become late or missing); suggestions' gains are measured from it
    projected_score: float | None = Field(default=None, ge=0.0, le=100.0)
    # added in place (schema_version 2; absent from scores published before): consumers dedupe on
    # ``score_id``, a hash of what was scored, so a redelivered request or care update gets the same id
    score_id: str | None = None
    scored_at: UtcDatetime | None = None  # wall clock of the worker that scored it
    request_id: str | None = None  # the plan's ``request_id`` (vigil.treatment.requests), as sent


def plan_json_schema() -> dict:
    """The published JSON Schema of ``TreatmentPlan`` (validation mode: what a client may send)."""
    return TreatmentPlan.model_json_schema(mode="validation")


def write_plan_schema(path: Path = PLAN_SCHEMA_PATH) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan_json_schema(), indent=2, sort_keys=True) + "\n")
    return path


if __name__ == "__main__":  # python -m vigil.schemas.treatment: regenerate the published schema
    import sys

    if len(sys.argv) > 1:  # --help too: it wrote the file
        sys.exit(f"usage: python -m vigil.schemas.treatment (no options): writes {PLAN_SCHEMA_PATH}")
    print(write_plan_schema())
