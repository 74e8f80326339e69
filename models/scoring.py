"""Build the published risk score for one patient at one hour (pure)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

from vigil.models.early_warning import news2, observations_from_row, qsofa, sirs
from vigil.models.window import PatientWindow
from vigil.schemas.scores import ModelScore, RiskScore, ScoreStatus

SHOWN_VITALS = ("HR", "O2Sat", "Temp", "SBP", "MAP", "Resp", "FiO2", "Lactate", "WBC")


@dataclass
class PendingUpdate:
    """What one batch changed for one patient."""

    patient_id: str
    event_ids: list[str] = field(default_factory=list)
    newest_observed: datetime | None = None
    source_ts_ms: int | None = None
    encounter: str | None = None
    ward: str | None = None

    def add(
        self, event_id: str, observed_at: datetime, kafka_ts_ms: int | None, encounter: str | None, ward: str | None
    ) -> None:
        self.event_ids.append(event_id)
        if self.newest_observed is None or observed_at > self.newest_observed:
            self.newest_observed = observed_at
        if kafka_ts_ms is not None and (self.source_ts_ms is None or kafka_ts_ms < self.source_ts_ms):
            self.source_ts_ms = kafka_ts_ms
        self.encounter = encounter or self.encounter
        self.ward = ward or self.ward


def score_id(patient_id: str, hour_start: datetime, event_ids: list[str], status: ScoreStatus = "provisional") -> str:
    """The score's id: the patient, the clock hour it scores (``hour_start``, UTC) and the events new
    in it; a final score's (no new events) is the patient and the clock hour alone. Not the hour's
    index: that restarts at 0 with every stay (and after ``MAX_GAP_HOURS``) and moves when an earlier
    observation re-anchors the stay, so two stays' finals of their hour 1, two months apart, had one
    id and a consumer deduplicating on it dropped the second. A batch delivered again scores the same
    clock hours with the same events: the same ids."""
    marker = "|final" if status == "final" else ""  # a final score has its own id (no new events)
    clock = hour_start.astimezone(UTC).isoformat()
    digest = hashlib.sha256(f"{patient_id}|{clock}|{','.join(sorted(event_ids))}{marker}".encode())
    return digest.hexdigest()[:24]


def build_risk_score(
    window: PatientWindow,
    update: PendingUpdate,
    models: list[ModelScore],
    now: datetime,
    hour: int | None = None,
    status: ScoreStatus = "provisional",
) -> RiskScore:
    """The score of ``hour`` (default: the window's newest hour). A final score (the hour has closed)
    sees only what was measured up to that hour and names no new events (they were scored already)."""
    hour = window.last_hour if hour is None else hour
    current = window.current_values(at_hour=hour)
    obs = observations_from_row(current)
    assert update.newest_observed is not None
    event_ids = update.event_ids if status == "provisional" else []
    # a window without an anchor holds no hour yet: its (provisional) id still names its events
    hour_start = window.hour_start(hour) if window.anchor_s is not None else datetime.fromtimestamp(0, UTC)
    return RiskScore(
        score_id=score_id(update.patient_id, hour_start, event_ids, status),
        patient_id=update.patient_id,
        encounter=update.encounter,
        ward=update.ward,
        hour=hour,
        status=status,
        scored_at=now,
        observed_at=_observed_at(window, update, hour, status),
        event_ids=event_ids,
        source_ts_ms=update.source_ts_ms if status == "provisional" else None,
        news2=news2(obs),
        qsofa=qsofa(obs),
        sirs=sirs(obs),
        models=models,
        vitals={code: current.get(code) for code in SHOWN_VITALS},
    )


def _observed_at(window: PatientWindow, update: PendingUpdate, hour: int, status: ScoreStatus) -> datetime:
    """What the score is as of: a final, its hour's newest measurement; a provisional, the newest of
    its batch's events and of the hour's measurements. The batch's alone went back when a batch held
    only a late result (a lab drawn hours before): the ward's card showed current values as hours old,
    and the care score was judged as of then, every later item dropped and graded "pending"."""
    if status == "final":
        return window.newest_observation(hour)
    assert update.newest_observed is not None
    if window.anchor_s is None:  # no hour yet: only the batch's events say when
        return update.newest_observed
    return max(update.newest_observed, window.newest_observation(hour))
