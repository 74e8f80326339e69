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
- Escalation: open and unacknowledged for escalate_after_s -> escalated.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import TypeAdapter

from vigil.schemas.alerts import Alert, AlertAck, AlertExplanation, TrendPoint
from vigil.schemas.scores import ModelScore, RiskScore

LEVELS = ("none", "low-medium", "medium", "high")
NEWS2_EXIT_TOTAL = 3
TREND_POINTS = 6


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


@dataclass
class PatientAlertState:
    patient_id: str = ""
    active: ActiveAlert | None = None
    model_latched: bool = False  # hysteresis memory for the model trigger
    closed_s: float | None = None
    closed_severity: str = "none"
    trend: list[tuple[int, int, float | None]] = field(default_factory=list)
    score_ids: list[str] = field(default_factory=list)

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


def _alert(
    state: PatientAlertState, score: RiskScore | None, new_state: str, reason: str, at: datetime, by: str | None = None
) -> Alert:
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
    return Alert(
        alert_id=active.alert_id,
        transition_id=_id(active.alert_id, new_state, active.severity, at.isoformat()),
        patient_id=state.patient_id,
        encounter=score.encounter if score else None,
        ward=score.ward if score else None,
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
    )


def _describe(score: RiskScore, trigger: str) -> str:
    n = score.news2
    scored = ", ".join(f"{k} {v}" for k, v in n.parameters.items() if v)
    text = f"NEWS2 {n.total} ({n.band})"
    if scored:
        text += f": {scored}"
    if n.missing:
        text += f"; not recorded: {', '.join(n.missing)} (total is a lower bound)"
    model = combined_model(score)
    if model is not None:
        text += (
            f"; model risk {model.probability:.2f} (threshold {model.threshold:.2f})"
            if model.threshold
            else f"; model risk {model.probability:.2f}"
        )
    return f"{trigger}: {text}"


def on_score(state: PatientAlertState, score: RiskScore, policy: AlertPolicy) -> list[Alert]:
    """Apply one score; mutate ``state``; return the transitions to publish (0 or 1, rarely 2)."""
    state.patient_id = score.patient_id
    model = combined_model(score)
    state.trend = [t for t in state.trend if t[0] != score.hour]
    state.trend.append((score.hour, score.news2.total, model.probability if model else None))
    state.trend = sorted(state.trend)[-TREND_POINTS:]
    state.score_ids = (state.score_ids + [score.score_id])[-TREND_POINTS:]
    now_s = score.observed_at.timestamp()
    level, state.model_latched, trigger = score_level(score, state.model_latched, policy)
    out: list[Alert] = []
    active = state.active
    if active is None:
        if level == "none":
            return out
        suppressed = (
            state.closed_s is not None
            and now_s - state.closed_s < policy.suppress_s
            and _rank(level) <= _rank(state.closed_severity)
        )
        if suppressed:
            return out
        state.active = ActiveAlert(
            alert_id=_id(score.patient_id, score.hour, trigger, now_s),
            state="open",
            severity=level,
            trigger=trigger,
            opened_s=now_s,
            opened_hour=score.hour,
            opened_wall_s=score.scored_at.timestamp(),
        )
        out.append(_alert(state, score, "open", _describe(score, trigger), score.observed_at))
        return out
    if _rank(level) > _rank(active.severity):
        active.severity, active.trigger, active.state = level, trigger, "escalated"
        out.append(
            _alert(state, score, "escalated", "risk rose a band: " + _describe(score, trigger), score.observed_at)
        )
        return out
    if _below_exit(score, state.model_latched):
        out.append(
            _alert(
                state,
                score,
                "resolved",
                "scores back below exit thresholds (NEWS2 <= 3, no single 3, model below exit)",
                score.observed_at,
            )
        )
        _close(state, now_s)
        return out
    out.extend(check_escalation(state, score.scored_at.timestamp(), policy, score))
    return out


def check_escalation(
    state: PatientAlertState, wall_now_s: float, policy: AlertPolicy, score: RiskScore | None = None
) -> list[Alert]:
    """Escalate an open alert nobody acknowledged within ``escalate_after_s`` (wall clock)."""
    active = state.active
    if active is None or active.state != "open" or wall_now_s - active.opened_wall_s < policy.escalate_after_s:
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
        )
    ]


def on_ack(state: PatientAlertState, ack: AlertAck) -> list[Alert]:
    active = state.active
    if active is None or active.alert_id != ack.alert_id:
        return []
    if ack.action == "acknowledge":
        if active.state == "acknowledged":
            return []
        active.state, active.acked_by = "acknowledged", ack.by
        return [_alert(state, None, "acknowledged", f"acknowledged by {ack.by}", ack.at, by=ack.by)]
    alert = _alert(state, None, "resolved", f"resolved by {ack.by}", ack.at, by=ack.by)
    _close(state, ack.at.timestamp())
    return [alert]


def _close(state: PatientAlertState, now_s: float) -> None:
    assert state.active is not None
    state.closed_s, state.closed_severity = now_s, state.active.severity
    state.active = None
