"""A treatment score names itself, its time and the request it answers: ``score_id`` (a hash of what
was scored: the same on a redelivery, so a consumer drops the second), ``scored_at`` (UTC) and
``request_id`` (copied from the plan's optional ``request_id``). Additive: a plan or a score without
them reads as before."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from tests.unit.models.test_stays import T0, stay
from vigil.agents import runtime as runtime_module
from vigil.agents.runtime import Publisher
from vigil.agents.treat import care_batch, plan_requests
from vigil.infra.redis import care_key, window_key
from vigil.schemas import topics
from vigil.schemas.scores import RiskScore, RuleScore
from vigil.schemas.treatment import TreatmentPlan, TreatmentScore


class Capture(Publisher):
    def __init__(self) -> None:
        super().__init__(SimpleNamespace(get_topic_name=lambda: topics.DEADLETTER))  # type: ignore[arg-type]
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic: Any, key: str | bytes | None, value: bytes) -> None:
        self.sent.append((topic.get_topic_name(), value))

    async def flush(self) -> None:
        pass

    def scores(self) -> list[TreatmentScore]:
        return [TreatmentScore.model_validate_json(v) for t, v in self.sent if t == topics.TREATMENT_SCORES]


def plan(**more: Any) -> dict[str, Any]:
    return {
        "patient_id": "p1",
        "time_zero": "2025-01-01T00:00:00Z",
        "state": {"suspected_sepsis": True, "lactate_mmol_l": 2.5},
        "items": [{"action": "antibiotic", "at": 30}, {"action": "blood_culture", "at": 20}],
        **more,
    }


def requested(*plans: dict[str, Any]) -> list[TreatmentScore]:
    publisher = Capture()
    events = [
        SimpleNamespace(
            message=SimpleNamespace(
                topic=topics.TREATMENT_REQUESTS, partition=0, offset=n, key=b"p1", value=json.dumps(p).encode()
            )
        )
        for n, p in enumerate(plans)
    ]
    asyncio.run(plan_requests(events, publisher))  # type: ignore[arg-type]
    return publisher.scores()


def test_a_requested_plans_score_carries_its_id_time_and_request() -> None:
    before = datetime.now(UTC)
    (score,) = requested(plan(request_id="req-42"))
    assert score.request_id == "req-42"
    assert score.score_id is not None and len(score.score_id) == 24
    assert score.scored_at is not None and score.scored_at.utcoffset() == timedelta(0)
    assert before <= score.scored_at <= datetime.now(UTC)
    assert json.loads(score.model_dump_json())["scored_at"].endswith("Z")


def test_the_score_id_is_the_same_on_a_redelivery_and_another_for_another_plan() -> None:
    first, again, spelled, other, other_request = requested(
        plan(request_id="req-42"),
        plan(request_id="req-42"),
        plan(request_id="req-42", time_zero="2025-01-01T02:00:00+02:00"),  # the same instant
        plan(request_id="req-42", items=[{"action": "antibiotic", "at": 90}]),
        plan(request_id="req-43"),
    )
    assert first.score_id == again.score_id == spelled.score_id
    assert len({first.score_id, other.score_id, other_request.score_id}) == 3


def test_a_plan_without_a_request_id_is_scored_as_before() -> None:
    (score,) = requested(plan())
    assert score.request_id is None and score.score_id is not None
    assert TreatmentPlan.model_validate(plan()).request_id is None


@pytest.mark.parametrize("request_id", ["", "r" * 65, "req\u202e42"])
def test_a_request_id_is_an_identifier(request_id: str) -> None:
    with pytest.raises(ValueError):
        TreatmentPlan.model_validate(plan(request_id=request_id))


def test_the_schemas_name_the_new_fields_as_optional() -> None:
    plan_schema = TreatmentPlan.model_json_schema(mode="validation")
    assert "request_id" in plan_schema["properties"] and "request_id" not in plan_schema.get("required", [])
    assert plan_schema["additionalProperties"] is False  # why request_id had to be declared to be sent
    score_schema = TreatmentScore.model_json_schema()
    for name in ("score_id", "scored_at", "request_id"):
        assert name in score_schema["properties"] and name not in score_schema.get("required", [])
    # a score published before the fields existed still reads
    old = TreatmentScore(items=[]).model_dump(exclude={"score_id", "scored_at", "request_id"})
    assert TreatmentScore.model_validate(old).score_id is None


class Store:
    """The Redis keys the treatment agent reads and writes, in memory."""

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    async def load_blobs(self, keys: list[str]) -> list[bytes | None]:
        return [self.blobs.get(k) for k in keys]

    async def save_blobs_if_unchanged(self, items: dict[str, tuple[bytes | None, bytes]]) -> list[str]:
        for key, (_read, blob) in items.items():
            self.blobs[key] = blob
        return []


def at_risk(hours: float) -> RiskScore:
    at = T0 + timedelta(hours=hours)
    rule = RuleScore(name="qSOFA", total=0, parameters={})
    return RiskScore(
        score_id=f"s{hours}",
        patient_id="p1",
        hour=int(hours),
        scored_at=at,
        observed_at=at,
        event_ids=[],
        news2=RuleScore(name="NEWS2", total=6, parameters={}, band="medium"),
        qsofa=rule,
        sirs=rule.model_copy(update={"name": "SIRS"}),
    )


def test_a_care_score_carries_its_id_and_time_and_a_redelivery_the_same_id(monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store({window_key("p1"): stay(6).to_bytes()})
    monkeypatch.setattr(runtime_module, "_runtime", SimpleNamespace(store=store))
    first = Capture()
    assert asyncio.run(care_batch([at_risk(4.25)], first)) == 1
    (score,) = first.scores()
    assert score.score_id is not None and score.request_id is None
    assert score.scored_at is not None and score.scored_at.utcoffset() == timedelta(0)
    # delivered again after a crash before the care clock was written: the same care, the same id
    del store.blobs[care_key("p1")]
    again = Capture()
    assert asyncio.run(care_batch([at_risk(4.25)], again)) == 1
    assert again.scores()[0].score_id == score.score_id
    # the stored care clock suppresses a re-publish as before: scored_at is no change of the care
    assert asyncio.run(care_batch([at_risk(4.25)], Capture())) == 0
