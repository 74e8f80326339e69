"""The scoring step feeds each ward's drift window with the hours that close for the first time only,
as it counts vigil_closed_hours_* (``models.stream_step.first_closings``): a late observation older
than the stay's first re-anchors the window and every hour of it is finalized anew; its hours were
in the ward's window already (12 patient-hours made 22 hours of the window, the patient weighed twice)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from vigil.agents import scoring
from vigil.agents.drift import WardDriftTracker, WardNames, first_closed
from vigil.infra.redis import PatientState, StayKeys
from vigil.models.alerting import AlertPolicy, PatientAlertState
from vigil.models.bundle import STEPPING_DIR, load_stepping_bundle
from vigil.models.drift import REFERENCE_FILE, DriftMonitor, DriftReference
from vigil.models.stay_features import TREE_FEATURES
from vigil.models.step_session import StepSession
from vigil.models.stepping import StayCarry
from vigil.models.stream_step import HourScore, StepOutcome, advance
from vigil.schemas.codes import DYNAMIC_CODES
from vigil.schemas.events import PatientEvent

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
WARD = "ICU-REFINAL"


class Store:
    """The patient's window, carry and alert state between batches, as Redis would keep them."""

    def __init__(self) -> None:
        self.states: dict[str, PatientState] = {}

    async def load_states(self, patient_ids: Any) -> dict[str, PatientState]:
        from vigil.models.window import PatientWindow

        out = {}
        for pid in patient_ids:
            kept = self.states.get(pid)
            out[pid] = (
                PatientState(PatientWindow.from_bytes(kept.window.to_bytes()), kept.carry, kept.alert)
                if kept
                else PatientState(PatientWindow(), None, PatientAlertState(patient_id=pid))
            )
        return out

    async def load_stay_keys(self, patient_ids: Any) -> dict[str, StayKeys]:
        return {}

    async def save_states(self, states: dict[str, PatientState]) -> list[str]:
        self.states.update(states)
        return []


class Sent:
    async def send(self, topic: Any, key: Any, value: bytes) -> None:
        pass

    async def dead_letter(self, event: Any, rejected: Any) -> None:
        raise AssertionError(f"refused: {rejected}")

    async def flush(self) -> None:
        pass


def heart_rate(hour: int, offset: int) -> tuple[Any, PatientEvent]:
    event = PatientEvent(
        patient_id="p",
        observed_at=T0 + timedelta(hours=hour, minutes=10),
        kind="vital",
        code="HR",
        value=80.0 + hour % 5,
        ward=WARD,
    )
    return SimpleNamespace(message=SimpleNamespace(partition=0, offset=offset, timestamp=None)), event


def closed_hours_counted() -> float:
    return sum(
        REGISTRY.get_sample_value("vigil_closed_hours_total", {"ward": WARD, "above_threshold": a}) or 0.0
        for a in ("0", "1")
    )


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    bundle = load_stepping_bundle(STEPPING_DIR, prefer_gpu=False)
    runner = StepSession(bundle.step_session, bundle.hidden)

    class Batcher:
        async def infer_many(self, requests: list[Any]) -> list[StepOutcome]:
            return advance(bundle, runner, requests, explain=False)

    reference = DriftReference.load(STEPPING_DIR / REFERENCE_FILE)
    monitor = DriftMonitor.for_inputs(reference, DYNAMIC_CODES, TREE_FEATURES)
    tracker = WardDriftTracker(monitor, bundle.version, 30.0, ward_names=WardNames())
    rt = SimpleNamespace(
        store=Store(), alert_lock=asyncio.Lock(), policy=AlertPolicy(), bundle=bundle, batcher=Batcher(), drift=tracker
    )
    monkeypatch.setattr(scoring, "runtime", lambda: rt)
    return rt


def test_a_stay_finalized_anew_enters_its_wards_drift_window_once(worker: SimpleNamespace) -> None:
    before = closed_hours_counted()
    asyncio.run(scoring.score_events([heart_rate(h, h) for h in range(11)], Sent()))  # type: ignore[arg-type]
    window = worker.drift.monitor.wards[WARD]
    assert window.filled == closed_hours_counted() - before == 10  # hours 0-9 closed, 10 is open
    # one late result two hours before the stay's first: the window re-anchors, every hour closes again
    asyncio.run(scoring.score_events([heart_rate(-2, 11)], Sent()))  # type: ignore[arg-type]
    assert closed_hours_counted() - before == 12  # the two new hours
    assert window.filled == 12  # not 22: hours 0-9 (now 2-11) are in the window already


def test_first_closed_keeps_the_rows_of_the_hours_it_keeps() -> None:
    hours = [HourScore(h, np.full(2, float(h), np.float32), []) for h in range(4)]
    rows = np.arange(8, dtype=np.float32).reshape(4, 2)
    outcome = StepOutcome(HourScore(4, np.zeros(2, np.float32), []), hours, rows, StayCarry())
    kept = first_closed(outcome, [hours[1], hours[3]])
    assert [h.hour for h in kept.closed] == [1, 3]
    np.testing.assert_array_equal(kept.closed_rows, rows[[1, 3]])
    assert first_closed(outcome, []).closed_rows.shape == (0, 2)
