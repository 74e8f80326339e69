"""The worker's counts (events in and accepted, scores, alerts, stays, closed patient-hours) and its
wards' drift windows take a batch once, when it is done: a batch handled again after a failed
attempt (a broker's hiccup at its flush, Redis away at its write) or split event by event after a
poison input counted its records at every attempt (``agents.runtime.when_done``)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError
from prometheus_client import REGISTRY

from tests.unit.agents.test_drift_first_closings import WARD, closed_hours_counted, heart_rate
from tests.unit.agents.test_drift_first_closings import worker as worker  # noqa: F401 - the fixture
from tests.unit.agents.test_run_batch import Ev, FakeTopic, Msg, fast_retries
from vigil.agents import alert_out, drift, ingest, scoring
from vigil.agents.runtime import Publisher, run_batch, taken_when_done, when_done
from vigil.infra import metrics
from vigil.schemas.alerts import Alert


class FlakyTopic(FakeTopic):
    """A topic whose records are refused (a transient ``KafkaTimeoutError`` on their futures) while
    ``failing`` holds."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name, self.failing = name, False

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, topic, key, value, partition, timestamp, headers):
        fut = asyncio.get_running_loop().create_future()
        if self.failing:
            fut.set_exception(KafkaTimeoutError())
        else:
            self.sent.append((key, value))
            fut.set_result(None)
        return fut


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_a_batch_retried_after_a_failed_flush_counts_its_events_and_alerts_once(monkeypatch) -> None:
    """The reviewer's case: one transient KafkaTimeoutError at the flush, then delivered. Counted at
    each attempt, vigil_alerts_total said 2 alerts for 1 published, vigil_events_in_total 4 for 2."""
    fast_retries(monkeypatch)
    topics = {name: FlakyTopic(name) for name in ("vigil.alerts", "vigil.alerts.fhir", "vigil.events")}
    monkeypatch.setattr(alert_out, "alerts_topic", topics["vigil.alerts"])
    monkeypatch.setattr(alert_out, "alerts_fhir_topic", topics["vigil.alerts.fhir"])
    monkeypatch.setattr(ingest, "events_topic", topics["vigil.events"])
    now = datetime.now(UTC)
    at = (now - timedelta(minutes=5)).isoformat()
    good = {"patient_id": "p-once", "observed_at": at, "kind": "vital", "code": "HR", "value": 80, "unit": "/min"}
    batch = [
        Ev(Msg(json.dumps(good).encode(), 1, topic="vigil.test.once")),
        Ev(Msg(b'{"kind": "vital"}', 2, topic="vigil.test.once")),
    ]
    alert = Alert(
        alert_id="a-once", transition_id="t-once", patient_id="p-once", state="open", severity="medium",
        trigger="news2_band:medium", reason="r", at=now, hour=3,
    )  # fmt: skip
    attempts = [0]

    async def handler(batch, publisher: Publisher) -> None:
        attempts[0] += 1
        topics["vigil.alerts"].failing = attempts[0] == 1
        accepted = await ingest.ingest_batch(batch, publisher)
        await alert_out.publish_alerts(publisher, [alert] if accepted else [])

    alerts = {"state": "open", "severity": "medium"}
    before = (
        sample("vigil_alerts_total", alerts),
        sample("vigil_events_in_total", {"topic": "vigil.test.once"}),
        sample("vigil_events_accepted_total"),
    )
    asyncio.run(run_batch(batch, handler, FakeTopic(), "test.once"))  # type: ignore[arg-type]
    assert attempts[0] == 2 and len(topics["vigil.alerts"].sent) == 1
    assert sample("vigil_alerts_total", alerts) - before[0] == 1
    assert sample("vigil_events_in_total", {"topic": "vigil.test.once"}) - before[1] == 2
    assert sample("vigil_events_accepted_total") - before[2] == 1


def test_a_batch_split_after_a_poison_input_counts_its_good_events_once(monkeypatch) -> None:
    fast_retries(monkeypatch)
    before = sample("vigil_events_in_total", {"topic": "vigil.test.split"})

    async def handler(batch, publisher: Publisher) -> None:
        for e in batch:
            when_done(metrics.EVENTS_IN.labels(e.message.topic).inc)
        if any(e.message.value == b"poison" for e in batch):
            raise ZeroDivisionError("feature code blew up")

    batch = [Ev(Msg(v, n, topic="vigil.test.split")) for n, v in enumerate([b"a", b"poison", b"c"])]
    asyncio.run(run_batch(batch, handler, FakeTopic(), "test.split"))  # type: ignore[arg-type]
    # the two good events, once each: not three for the whole batch first (the poison one is an
    # ``internal`` dead letter, counted as such)
    assert sample("vigil_events_in_total", {"topic": "vigil.test.split"}) - before == 2


def test_what_an_attempt_took_is_dropped_when_it_fails_and_taken_at_once_outside_a_batch() -> None:
    taken: list[str] = []
    with pytest.raises(ValueError), taken_when_done():
        when_done(lambda: taken.append("failed attempt"))
        raise ValueError("the flush failed")
    with taken_when_done():
        when_done(lambda: taken.append("done"))
        assert taken == []  # not before the batch is done
    when_done(lambda: taken.append("outside"))
    assert taken == ["done", "outside"]


class FailingOnce:
    """The worker's store, whose first write fails (Redis away a moment) after the batch's outputs
    were delivered: the batch is handled again, scored and published again (at-least-once)."""

    def __init__(self, store: Any) -> None:
        self.store, self.failures = store, 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def save_states(self, states: dict[str, Any]) -> list[str]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("redis restarting")
        return await self.store.save_states(states)


def test_a_scored_batch_handled_three_times_counts_its_hours_and_feeds_drift_once(
    worker: SimpleNamespace,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each patient-hour once in vigil_closed_hours_* (what a site's VIGIL_SITE__MEAN_RISK is measured
    from) and in its ward's drift window, once scored: the first attempt's flush fails, the second's
    write to Redis, the third is done."""
    fast_retries(monkeypatch)
    scores, stays, drifts = FlakyTopic("vigil.scores"), FlakyTopic("vigil.stays"), FlakyTopic("vigil.drift")
    monkeypatch.setattr(scoring, "scores_topic", scores)
    monkeypatch.setattr(scoring, "stays_topic", stays)
    monkeypatch.setattr(drift, "drift_topic", drifts)
    worker.store = FailingOnce(worker.store)
    parsed = [heart_rate(h, h) for h in range(11)]  # hours 0-9 close, 10 is open
    for event, _ in parsed:
        event.message.topic = "vigil.events.raw"
    attempts = [0]

    async def handler(batch, publisher: Publisher) -> None:
        attempts[0] += 1
        scores.failing = attempts[0] == 1
        await scoring.score_events(parsed, publisher)

    before = closed_hours_counted(), sample("vigil_scores_total")
    asyncio.run(run_batch([e for e, _ in parsed], handler, FakeTopic(), "test.scored"))  # type: ignore[arg-type]
    assert attempts[0] == 3 and worker.store.failures == 0
    assert closed_hours_counted() - before[0] == 10  # 30 when counted at every attempt
    assert sample("vigil_scores_total") - before[1] == 1  # the patient's provisional score
    assert worker.drift.monitor.wards[WARD].filled == 10
