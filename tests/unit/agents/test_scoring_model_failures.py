"""One patient's inputs that fail the models cost the other patients of the batch nothing. The
scoring step sent every patient through one call of the models: an exception made every patient
rules-only, and a probability that was not a number did too (``model_score`` clamped NaN to NaN,
which ``ModelScore`` refused); one ``models.failed`` line named no patient, nothing was counted,
and the poison patient's kept carry repeated it every batch. Models that fail every input (a broken
session) are found after two halvings (all four quarters fail: 7 calls): halving on down to each
patient cost 2N - 1 calls and N log lines a batch."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from tests.unit.agents.test_drift_first_closings import T0
from tests.unit.agents.test_drift_first_closings import worker as worker  # noqa: F401 - the fixture
from vigil.agents import scoring
from vigil.infra.logging import patient_hash
from vigil.models.batching import DynamicBatcher
from vigil.models.stay_features import TREE_FEATURES
from vigil.schemas.events import PatientEvent

POISON_HR = 251.0  # the heart rate whose hour fails the models in these tests (within ingest's range)
ALL_MODELS = ["sepsis_diagnosis", "deterioration", "combined"]


class Published:
    """The scores a batch published, by patient (its provisional score: the newest)."""

    def __init__(self) -> None:
        self.scores: dict[str, dict[str, Any]] = {}

    async def send(self, topic: Any, key: Any, value: bytes) -> None:
        record = json.loads(value)
        if "score_id" in record and record["status"] == "provisional":
            self.scores[record["patient_id"]] = record

    async def dead_letter(self, event: Any, rejected: Any) -> None:
        raise AssertionError(f"refused: {rejected}")

    async def flush(self) -> None:
        pass

    def models(self, pid: str) -> list[str]:
        return [m["model"] for m in self.scores[pid]["models"]]


def vital(offset: int, pid: str, code: str, value: float, minute: int = 10) -> tuple[Any, PatientEvent]:
    """One message: a vital sign of the patient in hour 0."""
    event = PatientEvent(
        patient_id=pid, observed_at=T0 + timedelta(minutes=minute), kind="vital", code=code, value=value
    )
    return SimpleNamespace(message=SimpleNamespace(partition=0, offset=offset, timestamp=None)), event


def heart_rates(values: dict[str, float]) -> list[tuple[Any, PatientEvent]]:
    """One heart rate of each patient in the same hour, one message each."""
    return [vital(offset, pid, "HR", value) for offset, (pid, value) in enumerate(values.items())]


def failures(error: str) -> float:
    return REGISTRY.get_sample_value("vigil_model_failures_total", {"error": error}) or 0.0


def test_a_nan_for_one_patient_leaves_the_other_patients_model_scores(
    worker: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = worker.bundle.tree_probability

    def nan_for_the_first(features: np.ndarray) -> np.ndarray:
        p = real(features)
        p[0] = np.nan  # the batch's first patient's one hour
        return p

    monkeypatch.setattr(worker.bundle, "tree_probability", nan_for_the_first)
    before = failures("not_a_number")
    out = Published()
    with capture_logs() as logs:
        asyncio.run(scoring.score_events(heart_rates({"a": 90.0, "b": 95.0, "c": 100.0}), out))  # type: ignore[arg-type]
    assert out.models("b") == out.models("c") == ALL_MODELS
    # its trees' score left out, and the combined risk computed from it: never published as a number
    assert out.models("a") == ["deterioration"]
    assert out.scores["a"]["news2"]["total"] >= 0  # its rule scores go out
    [line] = [e for e in logs if e["event"] == "models.not_a_number"]
    assert line["patient_hash"] == patient_hash("a") and line["models"] == ["sepsis_diagnosis", "combined"]
    assert failures("not_a_number") - before == 1


def test_a_nan_from_the_sequence_model_leaves_the_combined_risk_it_does_not_read(
    worker: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hunt's case: the attention encoder (weight 0 in the combined risk) gives NaN for one patient."""
    real = worker.bundle.window_probability

    def nan_for_the_first(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
        p = real(x, positions)
        p[0, :] = np.nan  # the batch's first patient
        return p

    monkeypatch.setattr(worker.bundle, "window_probability", nan_for_the_first)
    out = Published()
    asyncio.run(scoring.score_events(heart_rates({"a": 90.0, "b": 95.0}), out))  # type: ignore[arg-type]
    assert out.models("b") == ALL_MODELS
    assert out.models("a") == ["sepsis_diagnosis", "combined"]


def poisoned(worker: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The trees raise on a batch holding a patient whose heart rate is ``POISON_HR``; the sizes of
    the calls they were given, in order."""
    real = worker.bundle.tree_probability
    hr = TREE_FEATURES.index("HR_last")
    calls: list[int] = []

    def fails_on_the_poison(features: np.ndarray) -> np.ndarray:
        calls.append(len(features))
        if (features[:, hr] == POISON_HR).any():
            raise FloatingPointError("a graph's error on one patient's inputs")
        return real(features)

    monkeypatch.setattr(worker.bundle, "tree_probability", fails_on_the_poison)
    return calls


def test_an_exception_on_one_patients_inputs_leaves_the_other_patients_model_scores(
    worker: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = worker.bundle.tree_probability
    calls = poisoned(worker, monkeypatch)
    before = failures("FloatingPointError")
    patients = {"a": 90.0, "b": POISON_HR, "c": 100.0, "d": 105.0, "e": 110.0}
    out = Published()
    with capture_logs() as logs:
        asyncio.run(scoring.score_events(heart_rates(patients), out))  # type: ignore[arg-type]
    for pid in ("a", "c", "d", "e"):
        assert out.models(pid) == ALL_MODELS, pid
    assert out.models("b") == []  # rules only: its score still goes out
    assert out.scores["b"]["news2"]["total"] >= 0
    # the batch, each half once (one scored: the models work), then the failing half halved until the
    # poison patient was alone
    assert calls == [5, 2, 3, 1, 1]
    [line] = [e for e in logs if e["event"] == "models.failed"]
    assert line["patient_hash"] == patient_hash("b") and line["error"] == "FloatingPointError"
    assert "b" not in line.values()  # the hash, never the id
    assert failures("FloatingPointError") - before == 1
    # the poison patient's carry kept: once the models take its inputs, the next batch scores it
    monkeypatch.setattr(worker.bundle, "tree_probability", real)
    later = Published()
    asyncio.run(scoring.score_events([vital(9, "b", "Resp", 18.0, minute=20)], later))  # type: ignore[arg-type]
    assert later.models("b") == ALL_MODELS


def test_models_that_fail_every_patient_fail_the_batch_after_two_halvings(
    worker: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broken session (a CUDA device lost): its halves and quarters all fail, so every patient is
    failed there, in one log line; it was halved on to each patient, 2N - 1 calls and N lines, every
    batch."""
    real = worker.bundle.tree_probability
    calls: list[int] = []

    def broken(features: np.ndarray) -> np.ndarray:
        calls.append(len(features))
        raise RuntimeError("CUDA failure 999: unknown error")

    monkeypatch.setattr(worker.bundle, "tree_probability", broken)
    before = failures("RuntimeError")
    patients = {pid: 90.0 + k for k, pid in enumerate("abcdefgh")}
    out = Published()
    with capture_logs() as logs:
        asyncio.run(scoring.score_events(heart_rates(patients), out))  # type: ignore[arg-type]
    assert calls == [8, 4, 4, 2, 2, 2, 2]  # was 15 calls
    for pid in patients:  # rule scores only, every one still published
        assert out.models(pid) == [], pid
        assert out.scores[pid]["news2"]["total"] >= 0
    [line] = [e for e in logs if e["event"] == "models.failed"]  # was one line per patient
    assert line["patients"] == 8 and line["error"] == "RuntimeError" and "patient_hash" not in line
    assert failures("RuntimeError") - before == 8  # each patient counted, as before
    # their carries kept: once the session works again, the next batch scores them
    monkeypatch.setattr(worker.bundle, "tree_probability", real)
    later = Published()
    asyncio.run(
        scoring.score_events([vital(20 + k, pid, "Resp", 18.0, minute=20) for k, pid in enumerate(patients)], later)
    )  # type: ignore[arg-type]
    assert all(later.models(pid) == ALL_MODELS for pid in patients)


def test_poison_patients_in_the_half_that_fails_are_each_found(
    worker: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below the first halving the models are known to work (the other half scored): a failing half
    is halved on, so two poison patients in one half are each alone, the others scored."""
    calls = poisoned(worker, monkeypatch)
    patients = {pid: 90.0 + k for k, pid in enumerate("abcdefgh")}
    patients["b"] = patients["c"] = POISON_HR
    out = Published()
    with capture_logs() as logs:
        asyncio.run(scoring.score_events(heart_rates(patients), out))  # type: ignore[arg-type]
    assert calls == [8, 4, 4, 2, 1, 1, 2, 1, 1]
    assert {pid for pid in patients if out.models(pid) == ALL_MODELS} == set("adefgh")
    assert out.models("b") == out.models("c") == []
    lines = [e for e in logs if e["event"] == "models.failed"]
    assert sorted(e["patient_hash"] for e in lines) == sorted([patient_hash("b"), patient_hash("c")])


def infer_apart_calls(n: int, fails: Any) -> tuple[list[int], int, int, str | None]:
    """The calls ``_infer_apart`` makes for a batch of ``n`` patients through a real batcher, where
    ``fails`` tells the inputs the models raise on; with the outcomes and failures it returns."""
    calls: list[int] = []

    def infer(items: list[int]) -> list[int]:
        calls.append(len(items))
        if fails(items):
            raise RuntimeError("onnx")
        return [x * 2 for x in items]

    async def run() -> tuple[dict[str, Any], dict[str, str], str | None]:
        batcher = DynamicBatcher(infer, max_batch_size=1024, max_queue_delay_ms=0.0, inline_from=1)
        requests = {f"p{i}": i for i in range(n)}
        try:
            return await scoring._infer_apart(batcher, requests, list(requests))  # type: ignore[arg-type]
        finally:
            await batcher.close()

    outcomes, failed, broken = asyncio.run(run())
    return calls, len(outcomes), len(failed), broken


def test_the_cost_of_a_broken_session_and_of_one_poison_patient() -> None:
    calls, scored, failed, broken = infer_apart_calls(64, lambda items: True)
    assert (len(calls), scored, failed, broken) == (7, 0, 64, "RuntimeError")  # was 127 calls
    calls, scored, failed, broken = infer_apart_calls(500, lambda items: True)
    assert (len(calls), sum(calls), failed) == (7, 1500, 500)  # was 999 calls, 4,988 patients run
    calls, scored, failed, broken = infer_apart_calls(64, lambda items: 7 in items)
    assert (len(calls), scored, failed, broken) == (13, 63, 1, None)
    calls, scored, failed, broken = infer_apart_calls(1, lambda items: True)
    assert (calls, failed, broken) == ([1], 1, None)  # alone: its own patient's inputs
    # two patients whose inputs fail, one in each half: not broken models, each found (the first
    # version took both halves failing for a broken session and failed all 64)
    calls, scored, failed, broken = infer_apart_calls(64, lambda items: 3 in items or 40 in items)
    assert (scored, failed, broken) == (62, 2, None)
    calls, scored, failed, broken = infer_apart_calls(500, lambda items: 0 in items or 499 in items)
    assert (scored, failed, broken) == (498, 2, None)
    # a patient alone whose call failed is not called again while its neighbours are halved
    calls, scored, failed, broken = infer_apart_calls(3, lambda items: True)
    assert (calls, failed, broken) == ([3, 1, 2, 1, 1], 3, "RuntimeError")
