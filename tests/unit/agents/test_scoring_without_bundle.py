"""A worker without a model bundle scores the rules only, and still saves the carry that folds the
hours leaving the window into the running aggregates: the stored carry kept instead lost those hours
for the rest of the stay once a bundle was back (HR counted 0 times since admission, not 73)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from vigil.agents import scoring
from vigil.models.window import PatientWindow
from vigil.schemas.events import PatientEvent

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def eighty_hours() -> PatientWindow:
    """A window that applied 80 hours of heart rates: hours 0-31 left it."""
    window = PatientWindow()
    for h in range(80):
        at = T0 + timedelta(hours=h)
        window.apply(PatientEvent(patient_id="p", observed_at=at, kind="vital", code="HR", value=80.0 + h % 7))
    return window


def test_without_a_bundle_the_hours_leaving_the_window_are_still_folded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scoring, "runtime", lambda: SimpleNamespace(bundle=None))
    window = eighty_hours()
    outcomes, kept = asyncio.run(scoring._step(["p"], {"p": window}, {"p": None}, {"p": None}))
    assert outcomes == {}
    assert kept["p"].boundary > 0  # hours 0..31 folded, not dropped with the stored (absent) carry
    assert kept["p"].agg is not None


def test_when_the_models_fail_the_window_keeps_the_rows_its_carry_has_not_folded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a model failure the carry the batch was planned from is kept, and the rows that left the
    window stay with it (blob version 5): the next scored batch finalizes the outage's hours from every
    row, as ``vigil predict`` does (models/stream_step.py, ``carries_without_models``)."""

    class Failing:
        async def infer_many(self, requests: object) -> list[object]:
            raise RuntimeError("onnxruntime failed")

    bundle = SimpleNamespace(window_model=None, sequence_columns=None)
    monkeypatch.setattr(scoring, "runtime", lambda: SimpleNamespace(bundle=bundle, batcher=Failing()))
    window = eighty_hours()
    outcomes, kept = asyncio.run(scoring._step(["p"], {"p": window}, {"p": None}, {"p": None}))
    assert outcomes == {}
    assert kept["p"].boundary == 0  # nothing folded: the rows are kept with the window instead
    assert sorted(window.unfolded) == list(range(32)) and window.to_bytes()[0] == 5
