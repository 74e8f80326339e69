"""A bundle change through the real broker and Redis: a worker serving one bundle
(``VIGIL_BUNDLE_DIR``) is stopped half-way through a stay and another worker starts on a bundle
whose recurrent model is another of the same size. The carry in Redis names the model that wrote its
state, so the new worker replays the window from a zero state instead of stepping the old model's
state: every hour it finalizes equals the new bundle's offline score, and it counts the patient once
in its restarts (docs/operations.md, "Changing the bundle")."""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import unique_patient, wait_for
from tests.integration.test_stepping_stream import events_at, send_and_wait, vital_rows
from vigil.infra.connect import consumer_from_now, redis_client
from vigil.infra.redis import carry_key, unpack_state
from vigil.models.bundle import load_stepping_bundle
from vigil.models.stepping import StayCarry
from vigil.schemas import topics

pytestmark = pytest.mark.integration

# the synthetic bundles of the unit tests (lightgbm trees, a random GRU): two seeds, two GRUs
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "models"))
from stepbundle import build_test_bundle  # noqa: E402
from test_stream_advance import offline  # noqa: E402

HOURS = 40
SWITCH = 30  # the first hour the new bundle's worker reads
MODELS = ("sepsis_diagnosis", "deterioration", "combined")


def worker_logs(stack_home: Path, name: str) -> list[dict]:
    """The JSON log lines of the workers spawned as ``name`` (the first may follow a terminal's
    escape codes: Faust's start-up writes some before the first record)."""
    lines = [ln for f in (stack_home / "logs").glob(f"{name}-*.log") for ln in f.read_text().splitlines()]
    records = []
    for line in lines:
        with contextlib.suppress(ValueError):
            records.append(json.loads(line[line.index("{") :]))
    return [r for r in records if isinstance(r, dict)]


def test_a_worker_on_a_new_bundle_restarts_the_carried_state_and_scores_as_offline(
    stack, stack_settings, stack_home, shared_worker, spawn, producer, reader, tmp_path
) -> None:
    old_dir, new_dir = build_test_bundle(tmp_path / "old", seed=0), build_test_bundle(tmp_path / "new", seed=1)
    old, new = (load_stepping_bundle(d, prefer_gpu=False) for d in (old_dir, new_dir))
    assert old.state_tag != new.state_tag and old.hidden == new.hidden  # the carry alone cannot tell them apart
    pid = unique_patient("bundle")
    rows = vital_rows(np.random.default_rng(13))[:HOURS]
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS + 5)
    consumer = consumer_from_now(stack_settings, (topics.SCORES,), consumer_timeout_ms=200)
    r = reader(keep_scores=False)
    scores: list[dict] = []

    with shared_worker.stopped():  # this test's workers own every partition
        first = spawn("bundle-old", env={"VIGIL_BUNDLE_DIR": str(old_dir)})
        for hour in range(SWITCH):
            send_and_wait(producer, r, events_at(pid, rows, hour, base))
        first.terminate()  # a rolling deploy: the old worker leaves, committing what it scored
        assert first.wait(timeout=30) == 0
        written = StayCarry.from_bytes(unpack_state(redis_client(stack_settings).get(carry_key(pid))) or b"")
        assert written.model == old.state_tag

        spawn("bundle-new", env={"VIGIL_BUNDLE_DIR": str(new_dir)})
        for hour in range(SWITCH, HOURS):
            send_and_wait(producer, r, events_at(pid, rows, hour, base))

        def collect() -> bool:
            for batch in consumer.poll(timeout_ms=200).values():
                scores.extend(d for d in (json.loads(m.value) for m in batch) if d["patient_id"] == pid)
            return sum(s["status"] == "final" for s in scores) >= HOURS - 1

        assert wait_for(collect, timeout=60)
        consumer.close()
        carry = StayCarry.from_bytes(unpack_state(redis_client(stack_settings).get(carry_key(pid))) or b"")

    finals = {s["hour"]: {m["model"]: m["probability"] for m in s["models"]} for s in scores if s["status"] == "final"}
    assert sorted(finals) == list(range(HOURS - 1))
    was, now = offline(old, rows, {}), offline(new, rows, {})  # no demographics were sent
    for hour in range(HOURS - 1):  # hours 0-28 closed under the old bundle, 29 on under the new one
        want = was if hour < SWITCH - 1 else now
        for m in MODELS:
            assert abs(finals[hour][m] - want[m][hour]) <= 1e-5, (m, hour)
    moved = max(abs(now["deterioration"][h] - was["deterioration"][h]) for h in range(SWITCH - 1, HOURS - 1))
    assert moved > 1e-3, "the two bundles must score differently, or the test proves nothing"
    assert carry.model == new.state_tag

    new_logs = worker_logs(stack_home, "bundle-new")
    loaded = [e for e in new_logs if e.get("event") == "models.loaded"]
    assert loaded and loaded[0]["state_tag"] == f"{new.state_tag:08x}"
    restarts = sum(e.get("sequence_restarts", 0) for e in new_logs if e.get("event") == "batch.scored")
    assert restarts == 1  # the patient, once: the carries after it are the new model's own
