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
from vigil.models.care import CareClock, advance_clock, at_risk, care_categories, clock_inputs, remember_care
from vigil.models.stays import in_stay
from vigil.models.treatment import score_patient_care, score_plan
from vigil.models.window import PatientWindow
from vigil.schemas.deadletter import Rejected, invalid_record
from vigil.schemas.scores import RiskScore
from vigil.schemas.treatment import TreatmentPlan

log = get_logger(__name__)
STREAM_SUGGESTIONS = 3  # the feed shows the top few; the full search stays in `vigil plan score`
# The suggestion search's time per care score and per requested plan (``suggest_changes``): a care score
# takes milliseconds, a plan of 500 items and observation sets every 5 min took hours (one greedy step
# scores every single change). Past it, the suggestions of the steps completed are published.
STREAM_SEARCH_S = 0.5
PLAN_SEARCH_S = 2.0
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
    by_patient: dict[str, list[RiskScore]] = {}
    for s in scores:
        by_patient.setdefault(s.patient_id, []).append(s)
    if not by_patient:
        return 0
    rt = runtime()
    pids = sorted(by_patient)
    # Every patient's clock is read (one MGET): a patient no longer at risk still has items falling
    # due on an open clock (``CareClock.follows``). Windows only of the patients scored.
    risky = [p for p in pids if any(at_risk(s) for s in by_patient[p])]
    blobs = await rt.store.load_blobs([care_key(p) for p in pids] + [window_key(p) for p in risky])
    cares = dict(zip(pids, blobs[: len(pids)], strict=True))
    windows = {p: PatientWindow.from_bytes(b) for p, b in zip(risky, blobs[len(pids) :], strict=True)}
    following = [p for p in pids if p not in windows and _follows(cares[p], by_patient[p])]
    if following:
        more = await rt.store.load_blobs([window_key(p) for p in following])
        windows.update((p, PatientWindow.from_bytes(b)) for p, b in zip(following, more, strict=True))
    if not windows:
        return 0
    await _wait_for_scoring_windows(windows, {p: _newest(by_patient[p]) for p in windows})
    changed: dict[str, tuple[bytes | None, bytes]] = {}  # key: (the clock read, the clock to write)
    published = 0
    for pid in sorted(windows):
        window, cblob = windows[pid], cares[pid]
        # oldest first: the first at-risk score starts the clock (not the batch's last)
        batch = sorted((s for s in by_patient[pid] if in_stay(window, s.observed_at)), key=lambda s: s.observed_at)
        if not batch:
            continue  # scores of a stay that ended (discharged, or admitted again since)
        read = CareClock.model_validate_json(cblob) if cblob else None
        clock = read if read is not None and in_stay(window, read.time_zero) else None
        for s in batch:
            clock = advance_clock(clock, s)
        latest = batch[-1]
        if clock is None or not (any(at_risk(s) for s in batch) or clock.follows(latest.observed_at)):
            continue
        now = clock.judged_at(latest.observed_at)
        clock = remember_care(clock, window)
        state, items = clock_inputs(clock, window, now)
        # The care score (with its suggestion search) is recomputed when what it depends on changes:
        # the state, the care, an item falling due (its status), or at most once per hour of the
        # patient's stay (the suggestions' times): not on every vital sign.
        due = score_patient_care(state, items, now=now, patient_id=pid, suggest=False)
        statuses = [(i.name, i.status) for i in due.items]
        depends_on = [care_categories(state), items, latest.hour, statuses]
        inputs = _digest(json.dumps(depends_on, default=str, sort_keys=True))
        if inputs != clock.inputs:
            result = score_patient_care(
                state,
                items,
                now=now,
                patient_id=pid,
                max_suggestions=STREAM_SUGGESTIONS,
                search_s=STREAM_SEARCH_S,
            )
            # without the fields filled below (none yet): the digests stored before they existed still match
            digest = _digest(result.model_dump_json(exclude={"as_of_min", "score_id", "scored_at", "request_id"}))
            if digest != clock.digest:
                # filled after the digest: the time it was scored is no change of the care
                result = result.model_copy(
                    update={"score_id": care_score_id(pid, latest.score_id, digest), "scored_at": datetime.now(UTC)}
                )
                await publisher.send(treatment_scores_topic, pid, result.model_dump_json().encode())
                published += 1
            clock = clock.model_copy(update={"digest": digest, "inputs": inputs, "as_of": now})
        if clock != read:
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


def _newest(scores: list[RiskScore]) -> RiskScore:
    return max(scores, key=lambda s: s.observed_at)


def _follows(cblob: bytes | None, scores: list[RiskScore]) -> bool:
    """Whether scores that do not find the patient at risk still bring the care score (an open clock
    with items falling due: ``CareClock.follows``)."""
    return cblob is not None and CareClock.model_validate_json(cblob).follows(_newest(scores).observed_at)


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
    """The window was written before the score's events. An ended stay's window is behind a score
    after its end: the score is the next stay's first (a readmission), whose window is on its way;
    read as the ended stay's, the first at-risk score of the readmission was dropped."""
    if window.ended_s is not None:
        return int(score.observed_at.timestamp()) > window.ended_s
    return not window.covers(score.observed_at)


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
        except ValidationError as exc:
            await publisher.dead_letter(event, invalid_record(exc, "treatment plan"))
            continue
        except ValueError:
            await publisher.dead_letter(event, Rejected("schema", "treatment plan: invalid"))
            continue
        # off the event loop (Faust's timers and heartbeats), and bounded in time (PLAN_SEARCH_S)
        scored = await asyncio.to_thread(score_plan, plan, search_s=PLAN_SEARCH_S)
        result = scored.model_copy(
            update={"score_id": plan_score_id(plan), "scored_at": datetime.now(UTC), "request_id": plan.request_id}
        )
        await publisher.send(treatment_scores_topic, plan.patient_id or m.key, result.model_dump_json().encode())


@app.agent(treatment_requests_topic)
async def treatment_requests(stream: faust.StreamT) -> None:
    async for batch in batches(stream, 50):
        await run_batch(batch, plan_requests, deadletter_topic, "treat.requests")
