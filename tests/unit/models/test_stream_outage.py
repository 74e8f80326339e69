"""Batches the models fail on (``models.stream_step.carries_without_models`` with the windows): the
hours that close meanwhile are finalized by the next scored batch equal to ``vigil predict``'s scores,
for the served window model (the attention encoder) and a recurrent one (the test bundle's GRU)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from stepbundle import STATIC, build_test_bundle
from synthetic import synthetic_stay

from vigil.models import stream_step
from vigil.models.bundle import SteppingBundle, load_stepping_bundle
from vigil.models.step_session import StepSession
from vigil.models.stepping import StayCarry
from vigil.models.stream_step import advance, carries_without_models, load_served_bundle, step_request
from vigil.models.window import WINDOW_HOURS, PatientWindow
from vigil.schemas.codes import DYNAMIC_CODES
from vigil.schemas.events import PatientEvent

T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
MODELS = ("sepsis_diagnosis", "deterioration", "combined")


@pytest.fixture(scope="module", params=["served", "gru"])
def bundle(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SteppingBundle:
    if request.param == "served":
        served = load_served_bundle(prefer_gpu=False)
        assert served.window_model is not None  # the attention encoder: nothing carried
        return served
    gru = load_stepping_bundle(build_test_bundle(tmp_path_factory.mktemp("bundle")), prefer_gpu=False)
    assert gru.window_model is None
    return gru


def stay(seed: int, hours: int) -> np.ndarray:
    rows = synthetic_stay(np.random.default_rng(seed), hours)[:, : len(DYNAMIC_CODES)].astype(np.float32)
    rows[np.isnan(rows).all(1), DYNAMIC_CODES.index("HR")] = 80.0  # the stream learns of an hour from an event
    return rows


def events(rows: np.ndarray, hour: int) -> list[PatientEvent]:
    return [
        PatientEvent(
            patient_id="p",
            observed_at=T0 + timedelta(hours=hour, minutes=int(j)),
            kind="vital" if j < 8 else "lab",
            code=DYNAMIC_CODES[j],
            value=float(rows[hour, j]),
        )
        for j in np.nonzero(~np.isnan(rows[hour]))[0]
    ]


class Worker:
    """The worker's cycle for one patient (agents/scoring.py): load the window and carry blobs, apply
    a batch, score it, or, when the models fail, save the carry ``carries_without_models`` gives with
    the windows."""

    def __init__(self, bundle: SteppingBundle) -> None:
        self.bundle = bundle
        self.runner = StepSession(bundle.step_session, bundle.hidden)
        self.blobs = (b"", b"")
        self.final: dict[int, dict[str, float]] = {}

    def batch(self, evs: list[PatientEvent], models_fail: bool = False) -> None:
        window = PatientWindow.from_bytes(self.blobs[0])
        carry = StayCarry.from_bytes(self.blobs[1]) if self.blobs[1] else None
        anchor = window.anchor_s
        for k, v in STATIC.items():
            window.static[k] = (v, 0)
        for e in evs:
            window.apply(e)
        request = step_request(window, carry, anchor)
        assert request is not None
        if models_fail:
            hours = self.bundle.window_model.hours if self.bundle.window_model else None
            (kept,) = carries_without_models([request], hours, self.bundle.sequence_columns, windows=[window])
            self.blobs = (window.to_bytes(), kept.to_bytes())
            return
        (out,) = advance(self.bundle, self.runner, [request], explain=False)
        for h in out.closed:
            assert h.hour not in self.final, "an hour is finalized once"
            self.final[h.hour] = {m.model: m.probability for m in h.models}
        self.blobs = (window.to_bytes(), out.carry.to_bytes())


def offline(bundle: SteppingBundle, rows: np.ndarray) -> dict[str, np.ndarray]:
    risk = bundle.stay_risks([rows], [STATIC])[0]
    return {"sepsis_diagnosis": risk.diagnosis, "deterioration": risk.deterioration, "combined": risk.combined}


def test_the_hours_that_close_while_the_models_fail_are_finalized_as_offline(bundle: SteppingBundle) -> None:
    # the carry folded the hours leaving the window while its closed hour stayed: the next scored batch
    # finalized 16 hours from windows cut short (a sample stay's deterioration score: up to 0.056 off)
    rows = stay(11, 100)
    worker = Worker(bundle)
    outage = range(60, 76)
    for h in range(100):
        worker.batch(events(rows, h), models_fail=h in outage)
        if h in outage:  # the rows a not-yet-final hour reads stay with the window (blob version 5)
            assert worker.blobs[0][0] == 5 and StayCarry.from_bytes(worker.blobs[1]).closed == 58
        else:
            assert worker.blobs[0][0] == 4
    want = offline(bundle, rows)
    assert sorted(worker.final) == list(range(99))
    for h, got in worker.final.items():
        for m in MODELS:
            assert abs(got[m] - want[m][h]) <= 1e-5, (m, h)


def test_a_late_event_in_a_batch_the_models_failed_on_is_in_the_hours_finalized_after(
    bundle: SteppingBundle,
) -> None:
    """The batch changed an hour the carry had closed: a recurrent model steps again from the
    boundary, as the next batch cannot know (its ``changed_from`` is its own)."""
    rows = stay(12, 90)
    worker = Worker(bundle)
    at = T0 + timedelta(hours=55, minutes=59)  # hour 55, closed: it arrives at hour 65, in the outage
    late = PatientEvent(patient_id="p", observed_at=at, kind="lab", code="Lactate", value=9.5)
    for h in range(90):
        worker.batch(events(rows, h) + ([late] if h == 65 else []), models_fail=60 <= h < 70)
    changed = rows.copy()
    changed[55, DYNAMIC_CODES.index("Lactate")] = 9.5
    want, before = offline(bundle, changed), offline(bundle, rows)
    for h in range(59, 89):  # finalized from the batch after the outage on
        for m in MODELS:
            assert abs(worker.final[h][m] - want[m][h]) <= 1e-5, (m, h)
    assert max(abs(want[m][h] - before[m][h]) for m in MODELS for h in range(59, 89)) > 1e-4, "it must matter"


def test_an_outage_longer_than_the_window_keeps_folds_beyond_its_bound(
    bundle: SteppingBundle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``MAX_UNFOLDED_HOURS`` the carry folds the hours leaving the window (their finals are
    approximate), and the window holds no row the carry has folded."""
    monkeypatch.setattr(stream_step, "MAX_UNFOLDED_HOURS", 3)
    rows = stay(13, 80)
    worker = Worker(bundle)
    for h in range(70):
        worker.batch(events(rows, h), models_fail=h >= 55)
        window, carry = PatientWindow.from_bytes(worker.blobs[0]), StayCarry.from_bytes(worker.blobs[1])
        assert h - carry.boundary < WINDOW_HOURS + 3 and min([*window.evicted, *window.rows]) == carry.boundary
    for h in range(70, 80):
        worker.batch(events(rows, h))
    want = offline(bundle, rows)
    assert sorted(worker.final) == list(range(79))
    for h in range(69, 79):  # the hours closed after the outage: as offline again
        assert abs(worker.final[h]["sepsis_diagnosis"] - want["sepsis_diagnosis"][h]) <= 1e-5, h
