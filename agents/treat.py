"""Treatment agent: for every patient at risk, how well the care so far matches the guidelines
(SSC 2021 hour-1 bundle, NEWS2 clinical response) on ``vigil.treatment.scores``; and proposed
plans from ``vigil.treatment.requests`` scored with suggestions."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import faust
from pydantic import ValidationError

from vigil.agents.app import (
    app,
    deadletter_topic,
    scores_topic,
    treatment_requests_topic,
    treatment_scores_topic,
)
from vigil.agents.runtime import Publisher, batches, run_batch, runtime
from vigil.infra import metrics
from vigil.infra.logging import get_logger
from vigil.infra.redis import care_key, window_key
from vigil.models.care import CareClock, at_risk, care_categories, care_inputs
from vigil.models.stays import in_stay
from vigil.models.treatment import score_patient_care, score_plan
from vigil.models.window import PatientWindow
from vigil.schemas.deadletter import Rejected
from vigil.schemas.scores import RiskScore
from vigil.schemas.treatment import TreatmentPlan

log = get_logger(__name__)
STREAM_SUGGESTIONS = 3  # the feed shows the top few; the full search stays in `vigil plan score`
WINDOW_WAIT_S = 1.0  # longest wait for the window that scored a score to be written (then: what is there)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def plan_score_id(plan: TreatmentPlan) -> str:
    """A requested plan's score id: a hash of the plan as validated (its request id included), so the
    same request delivered again is scored under the same id and a consumer drops the second."""
    return hashlib.sha256(b"plan|" + plan.model_dump_json().encode()).hexdigest()[:24]


def care_score_id(patient_id: str, risk_score_id: str, digest: str) -> str:
    """A care score's id: the patient, the risk score that brought it and what it says (``digest``):
    the same score delivered again gives the same id; care that reads otherwise since, a new one."""
    return hashlib.sha256(f"care|{patient_id}|{risk_score_id}|{digest}".encode()).hexdigest()[:24]


async def care_batch(scores: list[RiskScore], publisher: Publisher) -> int:
    latest: dict[str, RiskScore] = {}
    for s in scores:
        if at_risk(s) or s.patient_id in latest:
            latest[s.patient_id] = s
    if not latest:
        return 0
    rt = runtime()
    pids = sorted(latest)
    blobs = await rt.store.load_blobs([window_key(p) for p in pids] + [care_key(p) for p in pids])
    windows = {pid: PatientWindow.from_bytes(blob) for pid, blob in zip(pids, blobs[: len(pids)], strict=True)}
    cares = blobs[len(pids) :]
    await _wait_for_scoring_windows(windows, latest)
    changed: dict[str, tuple[bytes | None, bytes]] = {}  # key: (the clock read, the clock to write)
    published = 0
    for pid, cblob in zip(pids, cares, strict=True):
        score = latest[pid]
        if not in_stay(windows[pid], score.observed_at):
            continue  # a score of a stay that ended (discharged, or admitted again since)
        care = CareClock.model_validate_json(cblob) if cblob else None
        if care is None or not in_stay(windows[pid], care.time_zero):
            care = CareClock(time_zero=score.observed_at)
        time_zero = care.time_zero
        state, items = care_inputs(score, windows[pid], time_zero)
        # The care score (with its suggestion search) is recomputed when what it depends on changes,
        # or at most once per hour of the patient's stay as deadlines pass: not on every vital sign.
        inputs = _digest(json.dumps([care_categories(state), items, score.hour], default=str, sort_keys=True))
        if inputs == care.inputs:
            continue
        result = score_patient_care(
            state, items, now=score.observed_at, patient_id=pid, max_suggestions=STREAM_SUGGESTIONS
        )
        # without the fields filled below (none yet): the digests stored before they existed still match
        digest = _digest(result.model_dump_json(exclude={"as_of_min", "score_id", "scored_at", "request_id"}))
        if digest != care.digest:
            # filled after the digest: the time it was scored is no change of the care
            result = result.model_copy(
                update={"score_id": care_score_id(pid, score.score_id, digest), "scored_at": datetime.now(UTC)}
            )
            await publisher.send(treatment_scores_topic, pid, result.model_dump_json().encode())
            published += 1
        clock = CareClock(time_zero=time_zero, digest=digest, inputs=inputs)
        changed[care_key(pid)] = (cblob, clock.model_dump_json().encode())
    await publisher.flush()  # delivered before the digest that suppresses a re-publish is stored
    # Only over the clock this batch read: the scoring step may have ended the stay (clock held and
    # deleted) or resumed one (the held, earlier clock restored) since; that clock stands, and the
    # score its change published brings the care score here again.
    moved = await rt.store.save_blobs_if_unchanged(changed)
    if moved:
        metrics.CARE_CLOCKS_MOVED.inc(len(moved))
        log.info("care.clock_moved", patients=len(moved))
    return published


async def _wait_for_scoring_windows(windows: dict[str, PatientWindow], scores: dict[str, RiskScore]) -> None:
    """Replace each window read before its score's events were written with the one that scored
    them. The scoring step publishes a score before it writes the window (so a crash re-scores
    instead of losing), so a score can arrive while Redis still holds the window from before its
    events: read those again, briefly, until the window covers the score's newest observation
    (``WINDOW_WAIT_S``; then the care score uses what is there)."""
    deadline = time.monotonic() + WINDOW_WAIT_S
    stale = [p for p in windows if _behind(windows[p], scores[p])]
    while stale and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        blobs = await runtime().store.load_blobs([window_key(p) for p in stale])
        for pid, blob in zip(stale, blobs, strict=True):
            windows[pid] = PatientWindow.from_bytes(blob)
        stale = [p for p in stale if _behind(windows[p], scores[p])]


def _behind(window: PatientWindow, score: RiskScore) -> bool:
    """The window was written before the score's events (an ended stay's window never catches up)."""
    return window.ended_s is None and not window.covers(score.observed_at)


@app.agent(scores_topic)
async def treatment_on_scores(stream: faust.StreamT) -> None:
    async for batch in batches(stream):
        await run_batch(batch, care_events, deadletter_topic, "treat")


async def care_events(batch: Sequence[faust.EventT], publisher: Publisher) -> None:
    scores = []
    for event in batch:
        try:
            scores.append(RiskScore.model_validate_json(event.message.value or b""))
        except (ValidationError, ValueError):
            await publisher.dead_letter(event, Rejected("schema", "not a valid risk score"))
    await care_batch(scores, publisher)


async def plan_requests(batch: Sequence[faust.EventT], publisher: Publisher) -> None:
    for event in batch:
        m = event.message
        try:
            plan = TreatmentPlan.model_validate_json(m.value or b"")
        except (ValidationError, ValueError) as exc:
            detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) and exc.errors() else "invalid"
            await publisher.dead_letter(event, Rejected("schema", f"treatment plan: {detail}"[:300]))
            continue
        result = score_plan(plan).model_copy(
            update={"score_id": plan_score_id(plan), "scored_at": datetime.now(UTC), "request_id": plan.request_id}
        )
        await publisher.send(treatment_scores_topic, plan.patient_id or m.key, result.model_dump_json().encode())


@app.agent(treatment_requests_topic)
async def treatment_requests(stream: faust.StreamT) -> None:
    async for batch in batches(stream, 50):
        await run_batch(batch, plan_requests, deadletter_topic, "treat.requests")
