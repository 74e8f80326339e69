"""The scoring step of the ingest agent (not an agent: ``agents/ingest.py`` runs it on each batch's
accepted events, in the same consume): apply the events to each patient's Redis window, score every
patient the batch touched through the stepping core (rules + the bundle's one-step recurrent model
and tree model, ``models.stream_step``) and publish its scores: a provisional score of the patient's
current hour and a final score of every hour that closed in this batch. The provisional score then
drives the patient's alert lifecycle (``models.alerting.on_score``) in the same batch: no second
consume of ``vigil.scores``. Window, carry and alert state are saved together."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import partial

import faust

from vigil.agents.alert_out import publish_alerts
from vigil.agents.app import scores_topic, settings, stays_topic
from vigil.agents.drift import WARD_NAMES, first_closed, owned_partitions
from vigil.agents.runtime import Publisher, runtime, when_done
from vigil.infra import metrics
from vigil.infra.logging import get_logger, patient_hash
from vigil.infra.redis import PatientState, StayChange, StayKeys
from vigil.models.alerting import afresh, on_resume, on_score
from vigil.models.batching import DynamicBatcher
from vigil.models.bundle import SteppingBundle
from vigil.models.scoring import PendingUpdate, build_risk_score
from vigil.models.stays import (
    Resumed,
    discharge,
    from_away,
    holdable_carry,
    is_cancel,
    is_discharge,
    keep_late,
    needs_held,
    next_stay,
    releases_held,
    resume,
    stay_encounter,
    stay_of,
    stay_rejection,
)
from vigil.models.stepping import StayCarry
from vigil.models.stream_step import (
    HourScore,
    StepOutcome,
    StepRequest,
    carries_without_models,
    closed_span,
    first_closings,
    step_request,
)
from vigil.models.window import LateEvent, PatientWindow
from vigil.schemas.alerts import Alert
from vigil.schemas.deadletter import Rejected
from vigil.schemas.events import PatientEvent
from vigil.schemas.scores import ModelScore
from vigil.schemas.stays import StayEnded, StayResumed

log = get_logger(__name__)
AWAY_UNITS = settings.ingest.units().away  # theatre, imaging: their results open no stay (models.stays)


def kafka_timestamp_ms(message: faust.types.tuples.Message) -> int | None:
    """Producer timestamp of the message (faust gives seconds as a float)."""
    ts = message.timestamp
    return int(ts * 1000) if ts else None


async def score_events(parsed: Sequence[tuple[faust.EventT, PatientEvent]], publisher: Publisher) -> int:
    """Apply, score, alert, publish, then persist. Window, carry and alert state are written only
    after the scores and alerts are delivered, so a redelivered event either finds its state absent
    (crash before the write: it is scored again, an at-least-once duplicate, and its alert
    transitions are published again with the same ``transition_id``) or present (at or before the
    window's saved position: applied again, which changes nothing; an exact copy or one the window has
    moved past is skipped and counted, a superseded reading scored as the hour stands; a discharge,
    cancel or another stay's event is skipped). A new message that changes nothing is a
    ``duplicate`` dead letter, but for an age or sex known already (named by its message's score, or
    counted). Never lost."""
    if not parsed:
        return 0
    async with runtime().alert_lock:  # the alert agent's acks and timer wait for this batch's write
        return await _score_locked(parsed, publisher)


async def _score_locked(parsed: Sequence[tuple[faust.EventT, PatientEvent]], publisher: Publisher) -> int:
    rt = runtime()
    t0 = time.perf_counter()
    started_ms = int(time.time() * 1000)
    oldest_ms: int | None = None  # the batch's oldest producer timestamp: how long it queued
    states = await rt.store.load_states({p.patient_id for _, p in parsed})
    metrics.REDIS_SECONDS.observe(time.perf_counter() - t0)
    windows = {pid: state.window for pid, state in states.items()}
    anchors = {pid: window.anchor_s for pid, window in windows.items()}
    # each patient-hour counted once in vigil_closed_hours_*: the hours the stored stay finalized (a
    # cancel folds the next stay, stored, back into the one it resumes: its hours are not new)
    finalized = {pid: closed_span(anchors[pid], state.carry) for pid, state in states.items()}
    # held stays and cancelled ends: read only for a batch's discharges, cancels and late events
    keys = await rt.store.load_stay_keys({p.patient_id for _, p in parsed if needs_held(windows[p.patient_id], p)})
    updates: dict[str, PendingUpdate] = {}
    alerts: list[Alert] = []
    ended: list[StayEnded | StayResumed] = []
    partitions: dict[str, int] = {}
    redeliveries = unchanged_demographics = 0
    for event, patient_event in parsed:
        pid, m = patient_event.patient_id, event.message
        partitions[pid] = m.partition
        produced_ms = kafka_timestamp_ms(m)
        if produced_ms is not None and (oldest_ms is None or produced_ms < oldest_ms):
            oldest_ms = produced_ms
        window, state = windows[pid], states[pid]
        # at or before the window's saved position: at-least-once delivery after a crash or a rebalance
        # (or offsets that went back under kept state: a topic recreated). Such a message of the current
        # stay is applied again, which changes nothing it applied (an exact copy is skipped, a
        # superseded reading scored as the hour stands); one the window has no place for any more is
        # skipped, its outcome out and saved. Each skip is counted (``vigil_redeliveries_skipped_total``)
        redelivered = window.seen(m.partition, m.offset)
        window.advance(m.partition, m.offset)
        held = keys.get(pid, StayKeys())
        if is_cancel(patient_event):
            if redelivered:  # its outcome is out and saved (the stay it resumed is in the window)
                redeliveries += 1
                continue
            back = resume(window, held.held, patient_event, datetime.now(UTC), held.discharged_s)
            if not isinstance(back, Resumed):
                await publisher.dead_letter(event, back)
                continue
            windows[pid] = state.window = window = back.window
            state.carry, anchors[pid] = back.carry, window.anchor_s
            on_resume(state.alert, patient_event.event_id)  # new alert ids; the acknowledgement it resolved
            keys[pid] = StayKeys(None, held.discharged_s)
            state.stays.append(StayChange("resume"))
            ended.append(back.record)
            # scored now, from the stay's own history; the score names the cancel, at the stay's
            # newest observation (not the cancel's time: its values are that old)
            span = window.observed_span()
            newest = datetime.fromtimestamp(span[1], tz=UTC) if span else patient_event.observed_at
            update = updates.setdefault(pid, PendingUpdate(pid, ward=window.ward))
            update.add(patient_event.event_id, newest, produced_ms, window.encounter, window.ward)
            continue
        stay = stay_of(window, patient_event, held.discharged_s, AWAY_UNITS)
        if redelivered and (stay != "current" or is_discharge(patient_event)):
            redeliveries += 1  # its outcome is out and saved (a stay it ended or began is in the window)
            continue
        if stay not in ("current", "new"):
            rejection = stay_rejection(window, patient_event, stay)
            kept = keep_late(window, held.held, patient_event) if stay == "ended" else None
            if kept is not None:  # in the held stay for a cancel of the discharge
                keys[pid] = StayKeys(kept, held.discharged_s)
                state.stays.append(StayChange("late", kept))
                rejection = Rejected(rejection.reason, rejection.detail + "; kept with the ended stay for a cancel")
            if releases_held(window, held.held, patient_event, stay):  # a ward's discharge after a transfer out
                keys[pid] = StayKeys(None, held.discharged_s)
                state.stays.append(StayChange("release"))
            await publisher.dead_letter(event, rejection)
            continue
        if stay == "new":  # the first event after a discharge: the next stay, from its hour 0
            windows[pid] = state.window = window = next_stay(window)
            # afresh; the acknowledgement the discharge resolved stays held for a cancel that folds this stay back
            state.carry, anchors[pid], finalized[pid] = None, None, None
            state.alert = afresh(state.alert)  # and the source of its alert ids: never the last stay's ids
            state.stays.append(StayChange("begin"))
        if is_discharge(patient_event):
            # the patient left: what this batch applied to the stay is not scored, but named
            unscored = updates.pop(pid).event_ids if pid in updates else []
            carry = holdable_carry(window, state.carry, anchors[pid])
            end = discharge(window, state.alert, patient_event, datetime.now(UTC), unscored, carry)
            alerts += end.alerts
            ended.append(end.record)
            windows[pid] = state.window = end.window
            state.carry, anchors[pid] = None, None
            discharged_s = int(patient_event.observed_at.timestamp())
            keys[pid] = StayKeys(end.held, discharged_s)
            state.stays.append(StayChange("end", end.held, discharged_s))
            continue
        try:
            changed = window.apply(patient_event)
        except LateEvent as exc:
            if redelivered:  # applied when it came; the window has moved 48 h on since (a backlog's)
                redeliveries += 1
                continue
            await publisher.dead_letter(event, Rejected("outside_window", str(exc)))
            continue
        if window.restarted:  # a week after its newest hour: hour 0 again (models.window.MAX_GAP_HOURS)
            window.restarted = False
            when_done(metrics.WINDOWS_RESTARTED.inc)
            log.warning("window.restarted_after_gap", patient_hash=patient_hash(pid))
        if not changed and redelivered:  # (at-least-once) its score is already out
            redeliveries += 1
            continue
        if not changed and patient_event.kind == "demographic":
            # the age and sex the feeds send beside every result message, known already: no twin of
            # a measurement to dead-letter, nothing to score. Named by the score of its message's
            # events (they come before it); without one in the batch (a message sent again, its
            # measurements ``duplicate``), counted. Its ward and encounter move nothing: a message
            # sent again late would put the patient back on its old ward
            pending = updates.get(pid)
            if pending is None:
                unchanged_demographics += 1
            else:
                pending.event_ids.append(patient_event.event_id)
            continue
        if not changed:
            # a twin (new message, same patient, time, code and value): nothing to score, but counted
            # on the dead letters, never skipped silently (issue 16)
            detail = f"{patient_event.code}: same patient, time and value as an event already applied"
            await publisher.dead_letter(event, Rejected("duplicate", detail))
            continue
        # the patient's ward: the newest an event named, kept in the window for events without one;
        # not an away unit's (theatre): the patient stays on the ward view and drift of the ICU
        ward = None if from_away(patient_event, AWAY_UNITS) else patient_event.ward
        update = updates.setdefault(pid, PendingUpdate(pid, ward=window.ward))
        update.add(patient_event.event_id, patient_event.observed_at, produced_ms, patient_event.encounter, ward)
        window.ward = update.ward
        window.encounter = stay_encounter(window, patient_event)
    if redeliveries:
        when_done(partial(metrics.REDELIVERIES_SKIPPED.inc, redeliveries))
    if unchanged_demographics:
        when_done(partial(metrics.DEMOGRAPHICS_UNCHANGED.inc, unchanged_demographics))
    pids = list(updates)
    t_apply = time.perf_counter()
    outcomes, carries_kept = await _step(pids, windows, {pid: states[pid].carry for pid in pids}, anchors)
    t_infer = time.perf_counter()
    restarted = count_sequence_restarts(outcomes.values())
    now = datetime.now(UTC)
    # the stays' ends and resumptions, in the batch's order (an A03 and its A13 in one batch: the end
    # first), before the scores: a reader of both topics meets a resumed stay before its score. The
    # counts of this step are taken once the batch is done (``when_done``), not by an attempt that failed
    for record in ended:
        await publisher.send(stays_topic, record.patient_id, record.model_dump_json().encode())
        if isinstance(record, StayEnded):
            when_done(metrics.STAYS_ENDED.labels(record.ended_by).inc)
        else:
            when_done(metrics.STAYS_RESUMED.inc)
    firsts: dict[str, list[HourScore]] = {}  # the hours that close for the first time
    for pid in pids:
        window, update, outcome = windows[pid], updates[pid], outcomes.get(pid)
        closed = outcome.closed if outcome else []
        firsts[pid] = first_closings(closed, window.anchor_s, finalized[pid])
        for hour in firsts[pid]:
            when_done(partial(count_closed_hour, update.ward, hour.models))
        for hour in closed:  # every hour that closed: its final score
            final = build_risk_score(window, update, hour.models, now, hour.hour, "final")
            await publisher.send(scores_topic, pid, final.model_dump_json().encode())
        score = build_risk_score(window, update, outcome.current.models if outcome else [], now)
        await publisher.send(scores_topic, pid, score.model_dump_json().encode())
        when_done(metrics.SCORES.inc)
        # a final score repeats what the provisional scores of its hour (and the next hour's,
        # which follows it) already told the lifecycle: alerts follow the provisional score only
        alerts += on_score(states[pid].alert, score, rt.policy)
    await publish_alerts(publisher, alerts)
    if rt.drift is not None and outcomes:
        # each patient-hour once, as vigil_closed_hours_* above: a stay finalized anew is in its ward's
        # window; fed once the batch is done, reported by the next batch or the timer (agents.drift)
        once = [first_closed(o, firsts[p]) for p, o in outcomes.items()]
        wards, parts = [updates[p].ward for p in outcomes], [partitions[p] for p in outcomes]
        when_done(partial(rt.drift.feed, list(outcomes), wards, once, parts))
        await rt.drift.publish(publisher, rt.drift.due(owned_partitions()))
    t_build = time.perf_counter()
    await publisher.flush()
    t1 = time.perf_counter()
    # the patients scored, and those whose stay ended, began anew or resumed
    saved = dict.fromkeys([*pids, *(p for p in states if states[p].restart)])
    for pid in saved:  # this worker's: its escalation timer, and no other's, looks at the alert
        states[pid].alert.partition = partitions[pid]
        carry = states[pid].carry
        if pid not in outcomes and pid not in carries_kept and carry is not None:
            # saved beside the stored carry (nothing scored: a late result of an ended stay, a stay
            # resumed): the rows it has not folded stay with the window (blob version 5), or a
            # model outage's rows, read back from the blob, were written away and lost to its hours
            windows[pid].keep_unfolded(carry.boundary)
    await rt.store.save_states(
        {
            pid: dataclasses.replace(
                states[pid], window=windows[pid], carry=_carry_to_save(pid, outcomes, carries_kept, states)
            )
            for pid in saved
        }
    )
    metrics.REDIS_SECONDS.observe(time.perf_counter() - t1)
    # one canonical line per batch (counts and timings only: no identifiers, no values)
    log.info(
        "batch.scored",
        events=len(parsed),
        patients=len(pids),
        queued_ms=None if oldest_ms is None else max(0, started_ms - oldest_ms),
        finals=sum(len(o.closed) for o in outcomes.values()),
        alerts=len(alerts),
        stays_ended=sum(isinstance(r, StayEnded) for r in ended),
        stays_resumed=sum(isinstance(r, StayResumed) for r in ended),
        sequence_restarts=restarted,
        redeliveries_skipped=redeliveries,
        load_apply_ms=_ms(t0, t_apply),
        infer_ms=_ms(t_apply, t_infer),
        build_ms=_ms(t_infer, t_build),
        deliver_ms=_ms(t_build, t1),
        save_ms=_ms(t1, time.perf_counter()),
    )
    return len(pids)


async def _step(
    pids: list[str],
    windows: dict[str, PatientWindow],
    carries: dict[str, StayCarry | None],
    anchors: dict[str, int | None],
) -> tuple[dict[str, StepOutcome], dict[str, StayCarry]]:
    """The models' outcome per patient that has an hour to score; for a patient the models fail on,
    rule scores only, and the carry that keeps the hours leaving its window
    (``carries_without_models``). A batch the models fail on is scored again in parts
    (``_infer_apart``): one patient's inputs that fail the models cost the others nothing; models
    that fail every part (a broken session) fail the whole batch, logged once."""
    rt = runtime()
    requests: dict[str, StepRequest] = {}
    for pid in pids:
        request = step_request(windows[pid], carries[pid], anchors[pid])
        if request is not None:
            requests[pid] = request
    if not requests:
        return {}, {}
    if rt.bundle is None:  # rules only until a bundle loads: the hours leaving the window still folded
        return {}, _kept_carries(requests, None)
    outcomes, failed, broken = await _infer_apart(rt.batcher, requests, list(requests))
    for pid, outcome in outcomes.items():
        if outcome.not_a_number:
            log.error("models.not_a_number", patient_hash=patient_hash(pid), models=list(outcome.not_a_number))
            when_done(metrics.MODEL_FAILURES.labels("not_a_number").inc)
    # a model failure must not lose the rule scores or stop the partition
    if broken is not None:  # the models failed the whole batch: one line, every patient counted
        log.error("models.failed", patients=len(failed), error=broken)
        when_done(partial(metrics.MODEL_FAILURES.labels(broken).inc, len(failed)))
    else:
        for pid, error in failed.items():
            log.error("models.failed", patient_hash=patient_hash(pid), error=error)
            when_done(metrics.MODEL_FAILURES.labels(error).inc)
    if not failed:
        return outcomes, {}
    # the carries they were planned from, kept, and the rows that left each window kept with it: the
    # next batch the models score finalizes these hours as ``vigil predict`` does
    unscored = {pid: requests[pid] for pid in failed}
    return outcomes, _kept_carries(unscored, rt.bundle, [windows[pid] for pid in unscored])


# parts of a failing batch that, all failing, say the models fail whatever the inputs
BROKEN_AFTER_PARTS = 4


async def _infer_apart(
    batcher: DynamicBatcher[StepRequest, StepOutcome], requests: dict[str, StepRequest], pids: list[str]
) -> tuple[dict[str, StepOutcome], dict[str, str], str | None]:
    """The outcomes of ``pids`` from one call of the models, the patients they failed on (each with its
    error's type) and, when they failed the whole batch, that error's type (else None).

    When the call fails, its halves are called, then their halves, until one part scores or
    ``BROKEN_AFTER_PARTS`` parts all fail: that says the models fail whatever the inputs (a CUDA
    device lost, a graph that cannot run), and every patient is failed, after 7 calls (halving on down
    to each patient cost 2N - 1 calls a batch, over 1,000 graph runs on the event loop for a catch-up
    batch of 500, and a log line per patient, batch after batch). Two halves alone would take two
    patients whose inputs fail, one in each, for broken models; four such patients, one in each
    quarter, still are (a batch rules-only, counted and logged as one). A part that scored says the models
    work: each failing part is then halved until a failing call holds one patient, whose inputs fail
    the models, and no other patient is left without model scores for it. One such patient among 64
    costs 12 calls more (two a halving), not 64. One call at a time, so that the batcher cannot
    coalesce them into the failing batch again."""
    try:
        return await _infer(batcher, requests, pids), {}, None
    except Exception as exc:  # whatever the models raise: the parts are tried apart
        if len(pids) == 1:
            return {}, {pids[0]: type(exc).__name__}, None
        error = type(exc).__name__
    tried: list[tuple[list[str], dict[str, StepOutcome] | Exception]] = [(pids, RuntimeError(error))]
    while True:  # each failing part of more than one patient halved and tried; a failed one kept
        halved: list[tuple[list[str], dict[str, StepOutcome] | Exception]] = []
        for part, t in tried:
            if isinstance(t, Exception) and len(part) > 1:
                halved += [(half, await _try(batcher, requests, half)) for half in _halves(part)]
            else:
                halved.append((part, t))
        tried = halved
        if any(not isinstance(t, Exception) for _, t in tried):
            break
        if len(tried) >= BROKEN_AFTER_PARTS or all(len(part) == 1 for part, _ in tried):
            return {}, dict.fromkeys(pids, error), error
    outcomes: dict[str, StepOutcome] = {}
    failed: dict[str, str] = {}
    for part, t in tried:
        if isinstance(t, Exception):
            part_outcomes, part_failed = await _isolate(batcher, requests, part, t)
            outcomes |= part_outcomes
            failed |= part_failed
        else:
            outcomes |= t
    return outcomes, failed, None


def _halves(pids: list[str]) -> list[list[str]]:
    return [pids] if len(pids) == 1 else [pids[: len(pids) // 2], pids[len(pids) // 2 :]]


async def _try(
    batcher: DynamicBatcher[StepRequest, StepOutcome], requests: dict[str, StepRequest], pids: list[str]
) -> dict[str, StepOutcome] | Exception:
    try:
        return await _infer(batcher, requests, pids)
    except Exception as exc:  # each part's failure decides what follows
        return exc


async def _isolate(
    batcher: DynamicBatcher[StepRequest, StepOutcome],
    requests: dict[str, StepRequest],
    pids: list[str],
    exc: Exception,
) -> tuple[dict[str, StepOutcome], dict[str, str]]:
    """``pids``, whose call of the models raised ``exc`` while other patients' did not, halved until
    each patient the models fail on is alone (``_infer_apart``)."""
    if len(pids) == 1:
        return {}, {pids[0]: type(exc).__name__}
    outcomes: dict[str, StepOutcome] = {}
    failed: dict[str, str] = {}
    for part in _halves(pids):
        t = await _try(batcher, requests, part)
        if isinstance(t, Exception):  # its half is halved again
            part_outcomes, part_failed = await _isolate(batcher, requests, part, t)
            outcomes |= part_outcomes
            failed |= part_failed
        else:
            outcomes |= t
    return outcomes, failed


async def _infer(
    batcher: DynamicBatcher[StepRequest, StepOutcome], requests: dict[str, StepRequest], pids: list[str]
) -> dict[str, StepOutcome]:
    results = await batcher.infer_many([requests[pid] for pid in pids])
    return dict(zip(pids, results, strict=True))


def _kept_carries(
    requests: dict[str, StepRequest], bundle: SteppingBundle | None, windows: list[PatientWindow] | None = None
) -> dict[str, StayCarry]:
    """``carries_without_models``; without ``windows`` (no bundle: rules only, maybe for days) the
    hours leaving the window are folded, not kept with it."""
    window = bundle.window_model if bundle else None
    try:
        carries = carries_without_models(
            list(requests.values()),
            window.hours if window else None,
            bundle.sequence_columns if bundle else None,
            windows,
        )
    except Exception as exc:  # the stored carries then, as before: the rule scores still go out
        log.error("models.carries_failed", error=type(exc).__name__)
        return {}
    return dict(zip(requests, carries, strict=True))


def count_closed_hour(ward: str | None, models: Sequence[ModelScore]) -> None:
    """vigil_closed_hours_total: the live share of a ward's hours at alert level (the combined risk at
    or above the served threshold), to read beside ``vigil_alert_threshold_training_share``, and
    vigil_closed_hours_risk_total: with it, the ward's mean combined risk, what the site's
    ``VIGIL_SITE__MEAN_RISK`` is measured as. Each patient-hour once, when it first closes
    (``models.stream_step.first_closings``: not again when a re-anchored window or a cancelled
    discharge finalizes it anew). An hour without a combined score (rules only) is not counted."""
    combined = next((m for m in models if m.model == "combined"), None)
    if combined is None:
        return
    name = WARD_NAMES(ward)
    metrics.CLOSED_HOURS.labels(name, "1" if combined.positive else "0").inc()
    metrics.CLOSED_HOURS_RISK.labels(name).inc(combined.probability)


def count_sequence_restarts(outcomes: Iterable[StepOutcome]) -> int:
    """vigil_sequence_state_restarts_total: the patients of a batch whose carried sequence-model state
    another bundle wrote (or that was not finite), dropped and replayed from the window
    (``models.stepping.own_states``)."""
    restarted = sum(o.restarted for o in outcomes)
    if restarted:
        when_done(partial(metrics.SEQUENCE_RESTARTS.inc, restarted))
    return restarted


def _carry_to_save(
    pid: str, outcomes: dict[str, StepOutcome], kept: dict[str, StayCarry], states: dict[str, PatientState]
) -> StayCarry | None:
    """The advanced carry; after a model failure the one that keeps the hours leaving the window;
    without either (no hour yet, no bundle) the stored one."""
    outcome = outcomes.get(pid)
    return outcome.carry if outcome is not None else kept.get(pid, states[pid].carry)


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 2)
