"""Alert lifecycle (pure): scores in, alert transitions out.

One alert per patient at a time: open -> (escalated) -> acknowledged -> resolved.
- Level of a score: NEWS2 >= 7 high, 5-6 medium, a single parameter scoring 3 low-medium
  (RCP NEWS2 2017 clinical response thresholds); the combined model above its stored threshold
  raises the level to at least medium.
- Hysteresis: the model enters at its threshold and leaves below threshold * exit_ratio; NEWS2
  enters at the band and leaves at <= 3 with no single parameter scoring 3.
- Dedup: while an alert is active, further scores at the same or a lower level publish nothing;
  a rise of a level escalates it (one transition). After resolution, the same level does not
  re-open within the suppression window (a patient hovering at a threshold pages once).
- Worse again: an active alert (open, escalated, acknowledged or snoozed) re-escalates when NEWS2
  rises by ``reescalate_news2_step`` points into the medium or high band (a rise within the low band,
  0 -> 2 -> 4, is no new response under RCP), or the model risk by ``reescalate_risk_step``, above
  the values of its last raise (open or escalation). RCP NEWS2 2017 asks for a higher level of
  response as the score rises but gives no step within the high band; the steps are Vigil's
  (docs/alerts.md), so a patient at NEWS2 13 is not left on an alert raised at NEWS2 7. After a
  resolution, a score that much worse than the resolved alert's last raise opens inside the
  suppression window.
- Escalation: open and unacknowledged for escalate_after_s -> escalated (wall clock).
- Snooze: an acknowledgement with an end; when it ends and the alert is still active it opens again.
- An answer (acknowledge, snooze, resolve) covers what its clinician saw: one given before the alert
  was raised again (worse, or a snooze that ended; ``AlertAck.at`` against the raise's wall clock)
  is not applied, nor one given before the answer last applied (arriving after it: the newer answer
  stands) (``unapplied_reason``); a clinician's resolution suppresses from when it was given,
  but never later than ``suppress_s`` after the newest observation (a backlog, a replay).
- Ids: an alert's id is the patient, the first event the lifecycle scored and the number of alerts it
  opened before (saved with the lifecycle), not the score that opened it: the scoring step publishes
  before it saves, and a batch delivered again after a crash may be grouped otherwise (other scores,
  another observation time), yet opens the same alert under the same id.
- Discharge: the stay ended (``models.stays``): an active alert resolves ("patient discharged") and
  the lifecycle starts afresh; nothing of the stay (suppression, latch, trend) reaches the next one.
- Cancelled discharge: the resumed stay's first score opens a new alert (a new id: the resolved one
  stays resolved). When an acknowledgement (or snooze) of the alert the discharge resolved is held
  (``HeldAck``), and the new alert's level is no higher, it opens acknowledged by the same clinician:
  the discharge in error does not page the team again for what they had answered. Unacknowledged, or
  worse, it opens and pages as any alert.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime

from pydantic import TypeAdapter

from vigil.schemas.alerts import Alert, AlertAck, AlertExplanation, TrendPoint
from vigil.schemas.display import missing_text, news2_text, percent
from vigil.schemas.scores import ModelScore, RiskScore

LEVELS = ("none", "low-medium", "medium", "high")
NEWS2_EXIT_TOTAL = 3
TREND_POINTS = 6
TRIGGER_WORDS = {
    "news2_band:high": "NEWS2 high",
    "news2_band:medium": "NEWS2 medium",
    "news2_single_parameter_3": "NEWS2 single parameter 3",
    "model:combined": "model risk",
}


def _rank(level: str) -> int:
    return LEVELS.index(level)


@dataclass
class ActiveAlert:
    alert_id: str
    state: str  # open | escalated | acknowledged
    severity: str
    trigger: str
    opened_s: float  # event time (patient physiology clock)
    opened_hour: int
    opened_wall_s: float = 0.0  # wall clock when Vigil raised it (escalation: nobody responded)
    acked_by: str | None = None
    opened_news2: int | None = None
    opened_risk: float | None = None
    raised_news2: int | None = None  # at the last open or escalation: "worse again" is measured from here
    raised_risk: float | None = None
    # wall clock of the last raise an earlier answer cannot have seen (a worse-again escalation, a
    # snooze that ended): an acknowledgement dated before it answered the alert as it was before
    raised_wall_s: float | None = None
    snoozed_until_s: float | None = None  # wall clock
    snooze_note: str | None = None
    # the answering system's ``at`` of the last answer applied: answers arrive out of order (two
    # systems, a redelivery), and one given before it must not undo it (a snooze cleared by an older
    # acknowledgement, an acknowledgement snoozed by an older snooze that then pages when it ends)
    answered_wall_s: float | None = None


@dataclass
class HeldAck:
    """The acknowledgement of the alert a discharge resolved, held for a cancel of that discharge."""

    alert_id: str
    severity: str
    by: str | None
    snoozed_until_s: float | None = None  # wall clock
    snooze_note: str | None = None
    raised_news2: int | None = None  # what was answered: worse than this, the resumed stay pages
    raised_risk: float | None = None


@dataclass
class PatientAlertState:
    patient_id: str = ""
    ward: str | None = None
    active: ActiveAlert | None = None
    model_latched: bool = False  # hysteresis memory for the model trigger
    closed_s: float | None = None  # patient clock
    closed_severity: str = "none"
    closed_news2: int | None = None  # the resolved alert's last raise: worse than it is not suppressed
    closed_risk: float | None = None
    last_observed_s: float | None = None  # the newest score's observation time (patient clock)
    trend: list[tuple[int, int, float | None]] = field(default_factory=list)
    score_ids: list[str] = field(default_factory=list)
    # the cancel that resumed this stay (its event id; ``models.stays.resume``): the resumed stay is
    # scored at the same hour and observation again, so its alert ids include it and never repeat an
    # id resolved at a discharge (one salt per cancel, saved: the same on a redelivered batch)
    resumed_by: str | None = None
    # the acknowledgement the last discharge resolved (``on_discharge``), and, once a cancel resumed
    # that stay (``on_resume``), the one its first score's alert opens with (``on_score``)
    discharged_ack: HeldAck | None = None
    resumed_ack: HeldAck | None = None
    # the ``vigil.events.raw`` partition of the patient's newest scored event: the worker holding it
    # owns the lifecycle, and only that worker's escalation timer looks at it (None: written by an
    # older version, any worker's timer may, each writing only what it read: ``escalation_round``)
    partition: int | None = None
    # the alert ids' source (``_alert_id``), saved, so that a batch replayed after a crash before the
    # save opens its alert under the same id whatever scores the batch is grouped into: the id of the
    # first event this lifecycle scored (a redelivery starts at the same event; a lifecycle lost and
    # begun again, expired, unreadable or written by an older version, begins at another, so its ids
    # never repeat the lost one's), and how many alerts it opened (``afresh`` keeps both)
    first_event_id: str | None = None
    alerts_opened: int = 0

    def to_bytes(self) -> bytes:
        return _STATE.dump_json(self)

    @classmethod
    def from_bytes(cls, blob: bytes | None) -> PatientAlertState:
        """Validated by pydantic (nested alert, trend tuples); keys this version does not know are
        ignored and missing ones take their defaults, so state written by another version loads."""
        return _STATE.validate_json(blob) if blob else cls()


_STATE = TypeAdapter(PatientAlertState)


@dataclass(frozen=True)
class AlertPolicy:
    exit_ratio: float = 0.8
    suppress_s: float = 6 * 3600.0
    escalate_after_s: float = 30 * 60.0
    reescalate_news2_step: int = 2
    reescalate_risk_step: float = 0.10


def combined_model(score: RiskScore) -> ModelScore | None:
    return next((m for m in score.models if m.model == "combined"), None)


def score_level(score: RiskScore, model_latched: bool, policy: AlertPolicy) -> tuple[str, bool, str]:
    """Return (level, new model latch, trigger) for one score."""
    news2 = score.news2
    level, trigger = "none", ""
    if news2.band == "high":
        level, trigger = "high", "news2_band:high"
    elif news2.band == "medium":
        level, trigger = "medium", "news2_band:medium"
    elif news2.single_parameter_3:
        level, trigger = "low-medium", "news2_single_parameter_3"
    model = combined_model(score)
    latched = model_latched
    if model is not None and model.threshold is not None:
        if model.probability >= model.threshold:
            latched = True
        elif model.probability < model.threshold * policy.exit_ratio:
            latched = False
        if latched and _rank(level) < _rank("medium"):
            level, trigger = "medium", "model:combined"
    return level, latched, trigger


def _below_exit(score: RiskScore, latched: bool) -> bool:
    return score.news2.total <= NEWS2_EXIT_TOTAL and not score.news2.single_parameter_3 and not latched


def _id(*parts: object) -> str:
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:24]


def _alert_id(state: PatientAlertState) -> str:
    """The id of the alert ``state`` opens now (``alerts_opened`` already counts it): only what a batch
    delivered again after a crash finds as it was (saved before it, or its first event), never the
    score: the scoring step publishes before it saves, and the same events grouped otherwise give
    other scores, observation times and hours (a second page under a new id, the first never resolved,
    its acknowledgement refused as ``not_active``; the hour too: events of 02:50 and 03:05 scored
    together open in hour 3, apart in hour 2). The count tells an alert resolved and opened again
    within one hour's observations from the resolved one; only the scoring step raises it, and its
    write stands only where the window is as it read it (``infra.redis``), so the count does not go
    back but with Redis' last second lost in a crash (docs/alerts.md); the first event (an id no list
    of patients gives) keeps "#1a2b3c4d" from telling whose alert it is."""
    salt = () if state.resumed_by is None else (state.resumed_by,)
    return _id(state.patient_id, state.first_event_id, "alert", state.alerts_opened, *salt)


def _alert(
    state: PatientAlertState,
    score: RiskScore | None,
    new_state: str,
    reason: str,
    at: datetime,
    by: str | None = None,
    note: str | None = None,
    basis: str | None = None,
) -> Alert:
    """One transition of the active alert. Its ``transition_id`` hashes the alert, its new state, its
    severity, ``at`` and ``reason``, or ``basis`` in place of the last two: the timer's transitions are
    stamped with the wall clock of the pass that found them due, but two passes over the same stored
    state (two workers' timers during a rebalance, a pass killed between its publish and its write)
    are one transition, and a consumer drops the second by its id."""
    active = state.active
    assert active is not None
    model = combined_model(score) if score else None
    explanation = AlertExplanation(
        rule_breakdown=dict(score.news2.parameters) if score else {},
        missing=list(score.news2.missing) if score else [],
        top_features=list(model.top_features) if model else [],
        trend=[TrendPoint(hour=h, news2=n, risk=r) for h, n, r in state.trend],
        score_ids=list(state.score_ids),
        summary=reason,
    )
    snoozed = active.snoozed_until_s
    return Alert(
        alert_id=active.alert_id,
        # the reason too: two escalations stamped alike (one hour's vitals in two batches, NEWS2 7 -> 9
        # -> 11) are two transitions; a replayed batch gives the same reason, so the same id
        transition_id=_id(
            active.alert_id, new_state, active.severity, *((basis,) if basis else (at.isoformat(), reason))
        ),
        patient_id=state.patient_id,
        encounter=score.encounter if score else None,
        # the timer's and the answers' transitions come without a score: the patient's ward as its
        # newest score named it, so a feed filtered by ward (``vigil alerts tail --ward``) keeps them
        ward=score.ward if score else state.ward,
        state=new_state,  # type: ignore[arg-type]
        severity=active.severity,  # type: ignore[arg-type]
        trigger=active.trigger,
        reason=reason,
        at=at,
        hour=score.hour if score else active.opened_hour,
        news2=score.news2 if score else None,
        risk=model.probability if model else None,
        by=by,
        explanation=explanation,
        opened_at=datetime.fromtimestamp(active.opened_s, tz=UTC),
        opened_news2=active.opened_news2,
        opened_risk=active.opened_risk,
        threshold=model.threshold if model else None,
        vitals=dict(score.vitals) if score else {},
        note=note,
        snoozed_until=datetime.fromtimestamp(snoozed, tz=UTC) if snoozed and new_state == "acknowledged" else None,
    )


def describe(score: RiskScore) -> str:
    """The reason in clinical words: "NEWS2 7 (high): RR 30 +3, SpO2 91 +2; model risk 6% (alert at 3.1%)"."""
    n = score.news2
    text = news2_text(n.total, n.band, n.parameters, score.vitals)
    model = combined_model(score)
    if model is not None:
        text += f"; model risk {percent(model.probability)}"
        if model.threshold:
            text += f" (alert at {percent(model.threshold)})"
    missing = missing_text(n.missing)
    return f"{text}; {missing}" if missing else text


def _raise(active: ActiveAlert, score: RiskScore) -> None:
    model = combined_model(score)
    active.raised_news2 = score.news2.total
    active.raised_risk = model.probability if model else None


def worse_since_raise(active: ActiveAlert | HeldAck, score: RiskScore, policy: AlertPolicy) -> str | None:
    """Why the patient is worse than at the alert's last raise by a documented step, or None."""
    return worse_than(active.raised_news2, active.raised_risk, score, policy)


def worse_than(news2: int | None, risk: float | None, score: RiskScore, policy: AlertPolicy) -> str | None:
    """Why ``score`` is worse than a raise at ``news2`` / ``risk`` by a documented step, or None.
    NEWS2 counts in the medium or high band only: 0 -> 2 -> 4 asks for no new response (RCP 2017)."""
    model = combined_model(score)
    total = score.news2.total
    if news2 is not None and total >= news2 + policy.reescalate_news2_step and score.news2.band in ("medium", "high"):
        return f"NEWS2 {news2} → {total}"
    if (
        model is not None
        and risk is not None
        and model.threshold is not None
        and model.probability >= model.threshold
        and model.probability >= risk + policy.reescalate_risk_step
    ):
        return f"model risk {percent(risk)} → {percent(model.probability)}"
    return None


def _open(state: PatientAlertState, score: RiskScore, level: str, trigger: str, ack: HeldAck | None = None) -> Alert:
    now_s = score.observed_at.timestamp()
    model = combined_model(score)
    state.alerts_opened += 1
    state.active = ActiveAlert(
        alert_id=_alert_id(state),
        state="open",
        severity=level,
        trigger=trigger,
        opened_s=now_s,
        opened_hour=score.hour,
        opened_wall_s=score.scored_at.timestamp(),
        opened_news2=score.news2.total,
        opened_risk=model.probability if model else None,
    )
    _raise(state.active, score)
    what = f"{TRIGGER_WORDS.get(trigger, trigger)}: {describe(score)}"
    # an alert opens once: its first transition is the alert's, not the score's (a batch grouped
    # otherwise after a crash opens it at another observation time, and must not page it twice)
    if ack is None:
        return _alert(state, score, "open", what, score.observed_at, basis="opened")
    _acknowledge(state.active, ack.by, ack.snoozed_until_s, ack.snooze_note)
    reason = f"acknowledged by {ack.by} before the discharge that was cancelled (alert #{ack.alert_id[:8]}); {what}"
    return _alert(
        state, score, "acknowledged", reason, score.observed_at, by=ack.by, note=ack.snooze_note, basis="opened"
    )


def _escalate(state: PatientAlertState, score: RiskScore, why: str) -> Alert:
    active = state.active
    assert active is not None
    active.state, active.snoozed_until_s, active.snooze_note = "escalated", None, None
    _raise(active, score)
    active.raised_wall_s = score.scored_at.timestamp()
    return _alert(state, score, "escalated", f"{why}: {describe(score)}", score.observed_at)


def on_score(state: PatientAlertState, score: RiskScore, policy: AlertPolicy) -> list[Alert]:
    """Apply one score; mutate ``state``; return the transitions to publish (0 or 1, rarely 2)."""
    state.patient_id = score.patient_id
    state.ward = score.ward or state.ward
    if state.first_event_id is None:  # the lifecycle's first score (a provisional one has its events)
        state.first_event_id = score.event_ids[0] if score.event_ids else score.score_id
    model = combined_model(score)
    state.trend = [t for t in state.trend if t[0] != score.hour]
    state.trend.append((score.hour, score.news2.total, model.probability if model else None))
    state.trend = sorted(state.trend)[-TREND_POINTS:]
    state.score_ids = (state.score_ids + [score.score_id])[-TREND_POINTS:]
    now_s = score.observed_at.timestamp()
    state.last_observed_s = max(now_s, state.last_observed_s or now_s)
    level, state.model_latched, trigger = score_level(score, state.model_latched, policy)
    ack, state.resumed_ack = state.resumed_ack, None  # the resumed stay's first score only
    active = state.active
    if active is None:
        if level == "none":
            return []
        suppressed = (
            state.closed_s is not None
            and now_s - state.closed_s < policy.suppress_s
            and _rank(level) <= _rank(state.closed_severity)
            and worse_than(state.closed_news2, state.closed_risk, score, policy) is None
        )
        answered = (
            ack
            if ack is not None and _rank(level) <= _rank(ack.severity) and worse_since_raise(ack, score, policy) is None
            else None
        )
        return [] if suppressed else [_open(state, score, level, trigger, answered)]
    if _rank(level) > _rank(active.severity):
        active.severity, active.trigger = level, trigger
        return [_escalate(state, score, f"risk rose to {level}")]
    worse = worse_since_raise(active, score, policy)
    if worse is not None and level != "none":
        return [_escalate(state, score, f"worse since the alert was last raised ({worse})")]
    if _below_exit(score, state.model_latched):
        reason = "scores back below exit thresholds (NEWS2 <= 3, no single 3, model below exit)"
        out = [_alert(state, score, "resolved", reason, score.observed_at)]
        _close(state, now_s)
        return out
    return check_escalation(state, score.scored_at.timestamp(), policy, score)


def check_escalation(
    state: PatientAlertState, wall_now_s: float, policy: AlertPolicy, score: RiskScore | None = None
) -> list[Alert]:
    """Escalate an open alert nobody acknowledged within ``escalate_after_s``, and open again a
    snoozed alert whose snooze ended (wall clock)."""
    active = state.active
    if active is None:
        return []
    if active.snoozed_until_s is not None and wall_now_s >= active.snoozed_until_s:
        note = active.snooze_note
        basis = f"snooze ended at {active.snoozed_until_s!r}"  # the same snooze's end, whoever finds it
        active.state, active.snoozed_until_s, active.snooze_note = "open", None, None
        active.opened_wall_s, active.acked_by, active.raised_wall_s = wall_now_s, None, wall_now_s
        reason = f"snooze ended ({note})" if note else "snooze ended"
        return [_alert(state, score, "open", reason, datetime.fromtimestamp(wall_now_s, tz=UTC), basis=basis)]
    if active.state != "open" or wall_now_s - active.opened_wall_s < policy.escalate_after_s:
        return []
    active.state = "escalated"
    minutes = int((wall_now_s - active.opened_wall_s) // 60)
    return [
        _alert(
            state,
            score,
            "escalated",
            f"not acknowledged within {minutes} min",
            datetime.fromtimestamp(wall_now_s, tz=UTC),
            basis=f"unanswered since {active.opened_wall_s!r}",  # the same open, whoever escalates it
        )
    ]


@dataclass(frozen=True)
class EscalationRound:
    """One pass of the escalation timer over the open alerts' states (``escalation_round``)."""

    changed: dict[str, PatientAlertState]  # key -> state to save (escalated, or a snooze ended)
    alerts: list[Alert]  # the transitions to publish
    unreadable: list[str]  # keys whose stored state does not parse: skipped, the others go on
    read: dict[str, bytes | None] = field(default_factory=dict)  # key -> the blob ``changed`` came from


def escalation_round(
    blobs: Mapping[str, bytes | None],
    wall_now_s: float,
    policy: AlertPolicy,
    owned: Collection[int] | None = None,
) -> EscalationRound:
    """``check_escalation`` over each stored state whose patient's partition is ``owned`` (None: all;
    a state without a partition: every worker's), the blob each change was read from beside it, for
    a write that keeps a newer one (an answer or a score another worker wrote meanwhile). A state
    that does not parse (a damaged value, a foreign write) is left out and named, so that it cannot
    stop every other patient's escalation."""
    changed: dict[str, PatientAlertState] = {}
    alerts: list[Alert] = []
    unreadable: list[str] = []
    for key, blob in blobs.items():
        try:
            state = PatientAlertState.from_bytes(blob)
        except ValueError:  # pydantic's ValidationError: not JSON, or not an alert state
            unreadable.append(key)
            continue
        if owned is not None and state.partition is not None and state.partition not in owned:
            continue  # another worker's patient: its timer, under its lock, with its answers
        due = check_escalation(state, wall_now_s, policy)
        if due:
            changed[key] = state
            alerts.extend(due)
    return EscalationRound(changed, alerts, unreadable, {k: blobs[k] for k in changed})


def needs_timer(state: PatientAlertState) -> bool:
    """The alert waits on the wall clock: open (escalation) or snoozed (the snooze ends)."""
    active = state.active
    return active is not None and (active.state == "open" or active.snoozed_until_s is not None)


def _acknowledge(active: ActiveAlert, by: str | None, until_s: float | None = None, note: str | None = None) -> None:
    """``active`` acknowledged by ``by``; snoozed until ``until_s`` (wall clock) with ``note``, or not."""
    active.state, active.acked_by = "acknowledged", by
    active.snoozed_until_s, active.snooze_note = until_s, note


NOT_ACTIVE = "not_active"
ANSWERED_BEFORE_RAISE = "before_raise"
SUPERSEDED = "superseded"
ALREADY = "already"


def unapplied_reason(state: PatientAlertState, ack: AlertAck) -> str | None:
    """Why ``on_ack`` would apply nothing: the alert is not the patient's active one (``NOT_ACTIVE``:
    resolved, replaced, unknown), the answer predates the alert's last raise (``ANSWERED_BEFORE_RAISE``:
    a late or redelivered answer to the alert as it was before it got worse or its snooze ended, by the
    clocks of the answering system and the worker), it predates the answer last applied (``SUPERSEDED``:
    arriving after a newer one, which stands: a snooze is not cleared by an older acknowledgement, nor
    an acknowledgement snoozed by an older snooze), or it is already so (``ALREADY``: redelivered)."""
    active = state.active
    if active is None or active.alert_id != ack.alert_id:
        return NOT_ACTIVE
    if active.raised_wall_s is not None and ack.at.timestamp() < active.raised_wall_s:
        return ANSWERED_BEFORE_RAISE
    if active.answered_wall_s is not None and ack.at.timestamp() < active.answered_wall_s:
        return SUPERSEDED
    if ack.action == "snooze" and active.snoozed_until_s == _snooze_end(ack):
        return ALREADY
    if ack.action == "acknowledge" and active.state == "acknowledged" and active.snoozed_until_s is None:
        return ALREADY
    return None


def _snooze_end(ack: AlertAck) -> float:
    assert ack.snooze_min is not None
    return ack.at.timestamp() + 60.0 * ack.snooze_min


def on_ack(state: PatientAlertState, ack: AlertAck, policy: AlertPolicy | None = None) -> list[Alert]:
    active = state.active
    if active is None or unapplied_reason(state, ack) is not None:
        return []
    active.answered_wall_s = ack.at.timestamp()
    if ack.action == "snooze":
        _acknowledge(active, ack.by, _snooze_end(ack), ack.note)
        reason = f"snoozed {ack.snooze_min} min by {ack.by}: {ack.note}"
        return [_alert(state, None, "acknowledged", reason, ack.at, by=ack.by, note=ack.note)]
    if ack.action == "acknowledge":
        _acknowledge(active, ack.by)
        reason = f"acknowledged by {ack.by}" + (f": {ack.note}" if ack.note else "")
        return [_alert(state, None, "acknowledged", reason, ack.at, by=ack.by, note=ack.note)]
    reason = f"resolved by {ack.by}" + (f": {ack.note}" if ack.note else "")
    alert = _alert(state, None, "resolved", reason, ack.at, by=ack.by, note=ack.note)
    # from when it was given, but on the patient clock between the newest observation and the window
    # after it: a resolution read hours after the data (a backlog, a replay) must not suppress the
    # patient's next hours past that window; the model enters at its threshold again
    _close(state, _resolved_s(state, ack.at.timestamp(), (policy or AlertPolicy()).suppress_s))
    state.model_latched = False
    return [alert]


DISCHARGED = "patient discharged: the stay ended"
TRANSFERRED = "patient transferred out of the monitored units: the stay ended"
ADMISSION_CANCELLED = "admission cancelled (entered in error, or not admitted): the stay ended"


def on_discharge(
    state: PatientAlertState,
    at: datetime,
    encounter: str | None = None,
    ward: str | None = None,
    reason: str = DISCHARGED,
) -> list[Alert]:
    """The patient left (``at``: the discharge or transfer time; ``reason`` the resolution's, as the
    alert feed shows it): resolve the active alert, if any, and start
    the lifecycle afresh for a next stay (no suppression window, model latch or trend carried). The
    alert's acknowledgement is held for a cancel of the discharge (``on_resume``)."""
    out = []
    active = state.active
    if active is not None:
        alert = _alert(state, None, "resolved", reason, at)
        out.append(alert.model_copy(update={"encounter": encounter, "ward": ward or state.ward}))
    fresh = afresh(state)
    fresh.discharged_ack = None
    if active is not None and active.state == "acknowledged":
        fresh.discharged_ack = HeldAck(
            active.alert_id,
            active.severity,
            active.acked_by,
            active.snoozed_until_s,
            active.snooze_note,
            active.raised_news2,
            active.raised_risk,
        )
    for f in fields(fresh):
        setattr(state, f.name, getattr(fresh, f.name))
    return out


def afresh(state: PatientAlertState) -> PatientAlertState:
    """The lifecycle of the patient's next stay: nothing of ``state``'s (suppression, latch, trend)
    but the acknowledgement held for a cancel of the discharge and the source of the alert ids, so
    the next stay's alerts never take this one's ids."""
    return PatientAlertState(
        patient_id=state.patient_id,
        discharged_ack=state.discharged_ack,
        first_event_id=state.first_event_id,
        alerts_opened=state.alerts_opened,
    )


def on_resume(state: PatientAlertState, cancel_event_id: str) -> None:
    """A cancel resumed the stay the last discharge ended: its alerts' ids include the cancel's event
    id (``resumed_by``), and the acknowledgement that discharge resolved comes back with the first
    alert of the resumed stay, unless the next stay opened its own alert meanwhile (that one goes on)."""
    state.resumed_by = cancel_event_id
    state.resumed_ack = state.discharged_ack if state.active is None else None
    state.discharged_ack = None


def _resolved_s(state: PatientAlertState, at_s: float, suppress_s: float) -> float:
    last = state.last_observed_s
    return at_s if last is None else max(last, min(at_s, last + suppress_s))


def _close(state: PatientAlertState, now_s: float) -> None:
    assert state.active is not None
    state.closed_s, state.closed_severity = now_s, state.active.severity
    state.closed_news2, state.closed_risk = state.active.raised_news2, state.active.raised_risk
    state.active = None
