"""Poison messages: >= 10,000 generated bad inputs through the pure ingest path (0 crashes, each
input exactly one of PatientEvent | Rejected), and 1,000 through the real broker and worker."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import wait_for
from tests.reliability.helpers import report
from tests.reliability.poison import poison_payload
from vigil.infra.readback import payload_digest
from vigil.models.alerting import PatientAlertState
from vigil.models.scoring import PendingUpdate, build_risk_score
from vigil.models.stays import Resumed, discharge, is_cancel, is_discharge, resume, stay_of
from vigil.models.window import LateEvent, PatientWindow
from vigil.schemas.codes import CATALOGUE
from vigil.schemas.deadletter import Rejected
from vigil.schemas.events import MAX_FUTURE_SKEW, PatientEvent
from vigil.schemas.normalize import decode_raw_event

pytestmark = pytest.mark.reliability

BATCH = 10
EXAMPLES = 1_000  # x BATCH inputs each = 10,000 generated inputs

bad_input = st.one_of(
    st.builds(poison_payload, st.randoms(use_true_random=False)),
    st.binary(max_size=300),
    st.text(max_size=200).map(str.encode),
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=5),
        max_leaves=20,
    ).map(lambda v: __import__("json").dumps(v).encode()),
)


def _score_accepted(event: PatientEvent, now: datetime) -> str:
    """The feature and rule code must not crash on anything ingest accepts; a discharge ends the
    stay instead (``models.stays``, as the scoring step does)."""
    window = PatientWindow()
    if is_discharge(event) or is_cancel(event):
        # a patient the window has seen an hour before: the discharge ends that stay
        seen = PatientEvent(
            patient_id=event.patient_id,
            observed_at=event.observed_at - timedelta(hours=1),
            kind="vital",
            code="HR",
            value=80,
        )
        window.apply(seen)
        if is_cancel(event):  # that stay discharged, then the discharge cancelled: it comes back or is refused
            leaving = event.model_copy(update={"code": "discharge"})
            end = discharge(window, PatientAlertState(), leaving, now)
            assert not isinstance(resume(PatientWindow(), None, event, now), Resumed)
            back = resume(end.window, end.held, event, now)
            assert isinstance(back, Resumed) and back.window.rows == window.rows
            back.window.to_bytes()
            return "resumed"
        never_seen = "none" if event.code == "transfer_out" else "unknown"  # a transfer out is no error
        assert stay_of(PatientWindow(), event) == never_seen and stay_of(window, event) in ("current", "other")
        discharge(window, PatientAlertState(), event, now).window.to_bytes()
        return "ended"
    try:
        window.apply(event)
    except LateEvent:
        return "late"
    update = PendingUpdate(event.patient_id)
    update.add(event.event_id, event.observed_at, None, event.encounter, event.ward)
    window.matrix()
    build_risk_score(window, update, [], now)
    return "scored"


def test_ten_thousand_generated_bad_inputs_are_all_accounted(results_dir) -> None:
    now = datetime.now(UTC)
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.lists(bad_input, min_size=BATCH, max_size=BATCH))
    def check(payloads: list[bytes]) -> None:
        for payload in payloads:
            result = decode_raw_event(payload, now)  # must not raise
            if isinstance(result, Rejected):
                assert result.reason and isinstance(result.detail, str)
                outcomes[f"rejected:{result.reason}"] += 1
                continue
            assert isinstance(result, PatientEvent)
            low, high = CATALOGUE[result.code][2]
            assert low <= result.value <= high
            assert result.observed_at <= now + MAX_FUTURE_SKEW
            outcomes[f"accepted:{_score_accepted(result, now)}"] += 1

    check()
    total = sum(outcomes.values())
    accepted = sum(v for k, v in outcomes.items() if k.startswith("accepted"))
    report(
        results_dir,
        "fuzz_pure",
        {"inputs": total, "crashes": 0, "accepted": accepted, "rejected": total - accepted, **dict(outcomes)},
    )
    assert total >= EXAMPLES * BATCH
    assert total - accepted > 0.5 * total  # the generator does produce mostly bad input


def test_thousand_bad_inputs_through_the_broker_are_accounted(
    stack, started_worker, producer, reader, results_dir
) -> None:
    worker = started_worker("poison")
    r = reader(keep_scores=True)
    rng = random.Random(20191)
    now = datetime.now(UTC)
    payloads = [poison_payload(rng, now) for _ in range(1_000)]
    expect_scored_or_dead: set[str] = set()  # accepted, by event id
    # accepted without an event_id: ingest assigns a fresh uuid, so account by (unique) patient id
    expect_patient_scored: dict[str, str] = {}  # patient -> digest (a refused discharge is dead-lettered)
    expect_dead: set[str] = set()  # rejected, by digest of the original bytes
    for payload in payloads:
        result = decode_raw_event(payload, now + timedelta(seconds=30))
        if isinstance(result, Rejected):
            expect_dead.add(payload_digest(payload))
        elif b'"event_id"' in payload:
            expect_scored_or_dead.add(result.event_id)
        else:
            expect_patient_scored[result.patient_id] = payload_digest(payload)
    for i, payload in enumerate(payloads):
        key = None if i % 7 == 0 else f"fuzz-key-{i % 13}".encode()  # no key, or a few hot keys
        producer.send("vigil.events.raw", key=key, value=payload)
    producer.flush()

    def unaccounted() -> int:
        rb = r.snapshot()
        scored_patients = {pid for pid, _hour in list(rb.last_scores)}
        scored_patients |= {s["patient_id"] for s in list(rb.stay_records)}  # a discharge ends, not scores
        return (
            len(expect_scored_or_dead - (rb.scored_ids | rb.dead_ids | rb.ended_ids))
            + len(expect_dead - rb.dead_digests)
            + sum(1 for p, d in expect_patient_scored.items() if p not in scored_patients and d not in rb.dead_digests)
        )

    done = wait_for(lambda: unaccounted() == 0, timeout=120)
    rb = r.snapshot()
    counts = {
        "inputs": len(payloads),
        "distinct_accepted": len(expect_scored_or_dead) + len(expect_patient_scored),
        "accepted_without_event_id": len(expect_patient_scored),
        "distinct_rejected": len(expect_dead),
        "unaccounted": unaccounted(),
        "lost": unaccounted(),
        "dead_letter_reasons": dict(rb.dead_letter_reasons),
        "worker_alive_after": worker.poll() is None,
    }
    report(results_dir, "fuzz_broker", counts)
    assert done and counts["unaccounted"] == 0
    assert worker.poll() is None, "poison must never kill the worker"
