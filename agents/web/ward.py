"""The ward as the dashboard sees it: a bounded, thread-safe model of each patient's latest state (pure).

``WardModel.apply(topic, value)`` takes one record of ``vigil.scores``, ``vigil.alerts``,
``vigil.treatment.scores``, ``vigil.drift`` or ``vigil.stays`` and returns the changed row (and the
alert transition, if any; for drift, the wards' drift indicator; for a stay's end, the row that left)
for the live feed; ``views`` turns rows into what the page shows. A discharged patient leaves the
ward view; records of the ended stay that arrive after its end (the topics are read side by side)
do not bring the patient back, the next stay's do. A cancelled discharge (``StayResumed``) brings
the card back as it left, and the stay's records count again. A score of a lower hour observed later
than the card's is a restarted window (the worker's hour index starts at 0 again), not a late score.
Answers to submitted plans on ``vigil.treatment.scores`` are not the patient's care and are left out.
Rows are addressed by an opaque ``row_id`` (keyed HMAC of the patient id) so no patient identifier
appears in a URL; the page shows the patient label because the clinician needs it.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, TypeVar

from pydantic import TypeAdapter

from vigil.agents.web import metrics, views
from vigil.agents.web.drift import WardDriftBoard
from vigil.models.window import WINDOW_HOURS
from vigil.schemas import topics
from vigil.schemas.alerts import Alert
from vigil.schemas.drift import WardDrift
from vigil.schemas.scores import RiskScore
from vigil.schemas.stays import StayEnded, StayResumed, parse_stay_record
from vigil.schemas.treatment import TreatmentScore

TREND_CODES = ("HR", "Resp", "SBP", "O2Sat", "Temp")
TREND_POINTS = WINDOW_HOURS  # one per scored hour: the model's window
RECENT_TRANSITIONS = 200
LEFT_CARDS = 200  # cards of the latest discharges kept for a cancel of the discharge to bring back
PATIENT_LOG = 100  # alert transitions (with acks and notes) kept per patient for the patient page

_SCORE = TypeAdapter(RiskScore)
_ALERT = TypeAdapter(Alert)
_TREATMENT = TypeAdapter(TreatmentScore)
_DRIFT = TypeAdapter(WardDrift)
T = TypeVar("T")


def _raised_by(alert: dict[str, Any], through: datetime) -> bool:
    """An alert (as the row keeps it) opened at or before a stay's end: that stay's."""
    opened = alert.get("opened_at") or alert.get("at")
    return opened is not None and datetime.fromisoformat(opened) <= through


def _utc(at: datetime) -> datetime:
    """A time without a zone is UTC (the stream's times are): every time compares with every other."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _remember(memory: OrderedDict[str, T], key: str, value: T, limit: int) -> None:
    """``key`` as the newest entry of a bounded memory: the oldest leave beyond ``limit``."""
    memory[key] = value
    memory.move_to_end(key)
    while len(memory) > limit:
        memory.popitem(last=False)


def _forget_scores(row: PatientRow) -> None:
    """The row's scores and their trends leave it (they were of a window or a stay that ended)."""
    row.hour = row.observed_at = row.news2 = row.risk = row.threshold = row.risk_model = None
    row.top_features, row.vitals = [], {}
    row.trends.clear()
    row.history.clear()
    row.treatment = None  # that stay's care score: a well patient's card said "antibiotic overdue by 8 d"


def row_id_for(patient_id: str, key: bytes) -> str:
    return hmac.new(key, patient_id.encode(), hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class _Ended:
    """A stay that ended: its end (``through``), its alerts and what ended it (``StayEnded.ended_by``)."""

    through: datetime
    alert_ids: frozenset[str]
    by: str = "discharge"


@dataclass
class PatientRow:
    row_id: str
    patient_id: str
    ward: str | None = None
    hour: int | None = None
    observed_at: datetime | None = None
    news2: dict[str, Any] | None = None
    risk: float | None = None
    threshold: float | None = None
    risk_model: str | None = None
    top_features: list[dict[str, Any]] = field(default_factory=list)
    vitals: dict[str, float | None] = field(default_factory=dict)
    trends: dict[str, deque[tuple[int, float | None]]] = field(default_factory=dict)
    history: deque[tuple[int, str, int, float | None]] = field(default_factory=lambda: deque(maxlen=TREND_POINTS))
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # open/escalated/acknowledged
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=PATIENT_LOG))
    treatment: TreatmentScore | None = None
    updated_at: float = 0.0


class WardModel:
    """Bounded (``max_patients``, least recently updated evicted), thread-safe latest state per patient."""

    def __init__(self, hash_key: bytes, max_patients: int = 2000, zone: tzinfo = UTC) -> None:
        self._key = hash_key
        self.max_patients = max_patients
        self.zone = zone
        self._rows: OrderedDict[str, PatientRow] = OrderedDict()
        self._alert_rows: dict[str, str] = {}  # alert_id -> row_id (for acks by alert id)
        # the latest transitions by their time, not by when they were read: the backfill reads the
        # partitions one after another, so the newest escalation may be read before older lines
        self._recent: list[tuple[datetime, dict[str, Any]]] = []
        # the backfill is read: lines go in as they are read (live), the order the stream sent them
        self.live = False
        self._seen_transitions: OrderedDict[str, None] = OrderedDict()
        # row_id -> what a late record of an ended stay is told by, and the card a cancel brings back
        self._ended: OrderedDict[str, _Ended] = OrderedDict()
        self._left: OrderedDict[str, PatientRow] = OrderedDict()  # row_id -> the card that left
        self._lock = threading.Lock()
        self.drift = WardDriftBoard()

    def _row(self, patient_id: str) -> PatientRow:
        rid = row_id_for(patient_id, self._key)
        row = self._rows.get(rid)
        if row is None:
            row = PatientRow(rid, patient_id)
            self._put(rid, row)
        self._rows.move_to_end(rid)
        row.updated_at = time.time()
        return row

    def _put(self, rid: str, row: PatientRow) -> None:
        """A row into the bounded view: the least recently updated leaves when it is full."""
        self._rows[rid] = row
        while len(self._rows) > self.max_patients:
            _, old = self._rows.popitem(last=False)
            for alert_id in old.alerts:
                self._alert_rows.pop(alert_id, None)

    def apply(self, topic: str, value: bytes) -> dict[str, Any] | None:
        """Apply one record; return the SSE message (changed row, maybe a transition) or None."""
        try:
            if topic == topics.SCORES:
                return self.apply_score(_SCORE.validate_json(value))
            if topic == topics.ALERTS:
                return self.apply_alert(_ALERT.validate_json(value))
            if topic == topics.TREATMENT_SCORES:
                return self.apply_treatment(_TREATMENT.validate_json(value))
            if topic == topics.DRIFT:
                return self.drift.apply(_DRIFT.validate_json(value))
            if topic == topics.STAYS:
                stay = parse_stay_record(value)
                return self.apply_stay_end(stay) if isinstance(stay, StayEnded) else self.apply_stay_resumed(stay)
        except ValueError:  # pydantic's ValidationError, a record that is not JSON or of an unknown kind
            metrics.FEED_ERRORS.labels(topic).inc()
        return None

    def _message(self, row: PatientRow, transition: dict[str, Any] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"row": views.row_json(row, self.zone)}
        if transition is not None:
            message["transition"] = transition
        return message

    def _log_recent(self, at: datetime, entry: dict[str, Any]) -> None:
        """A line into the transitions feed at its time (after lines of the same time); the oldest
        leave beyond ``RECENT_TRANSITIONS`` (a line older than all of them never enters)."""
        if self.live:  # in the order the page's stream got them: an escalation of older vital signs,
            # raised now, is the newest line, not 60 lines down behind the acknowledgements of the hour
            self._recent.append((_utc(at), entry))
        else:
            bisect.insort_right(self._recent, (_utc(at), entry), key=lambda line: line[0])
        if len(self._recent) > RECENT_TRANSITIONS:
            del self._recent[0]

    def _first_time(self, transition_id: str) -> bool:
        """Whether a transition (or a stay's end) is new: delivery is at-least-once (bounded memory)."""
        if transition_id in self._seen_transitions:
            return False
        _remember(self._seen_transitions, transition_id, None, 20 * RECENT_TRANSITIONS)
        return True

    def _of_ended_stay(self, patient_id: str, at: datetime | None, alert_id: str | None = None) -> bool:
        """A record of a stay that ended: one of its alerts, or at or before its end (``through``).
        A later record is the next stay's. A record without a time is the ended stay's unless the
        patient is back on the ward."""
        rid = row_id_for(patient_id, self._key)
        ended = self._ended.get(rid)
        if ended is None:
            return False
        if alert_id is not None and alert_id in ended.alert_ids:
            return True
        return rid not in self._rows if at is None else at <= ended.through

    def apply_stay_end(self, stay: StayEnded) -> dict[str, Any] | None:
        """The patient left: off the ward view, with a line in the transitions feed (once: a
        redelivered record is known by its discharge's event id). A row that already shows the
        next stay (read first from the other topics) stays; only the ended stay's alerts leave it."""
        with self._lock:
            if not self._first_time(f"stay-{stay.event_id}"):
                return None
            rid = row_id_for(stay.patient_id, self._key)
            through = max(stay.ended_at, stay.through or stay.ended_at)
            row = self._rows.get(rid)
            # the row already shows the next stay when a score or an alert of it was read first; only
            # the ended stay's alerts leave it (one of the next stay's, counted as the ended stay's,
            # would drop every later transition of it: an open alert never shown, never acknowledged)
            next_score = row is not None and row.observed_at is not None and row.observed_at > through
            back = row is not None and (next_score or any(not _raised_by(a, through) for a in row.alerts.values()))
            if row is not None and not back:
                del self._rows[rid]
            ended_alerts = {stay.resolved_alert} if stay.resolved_alert else set()
            if row is not None:
                ended_alerts |= {a for a, data in row.alerts.items() if _raised_by(data, through)}
                for alert_id in ended_alerts:
                    row.alerts.pop(alert_id, None)
                if back and not next_score:  # the scores shown are the ended stay's: the next one's follow
                    _forget_scores(row)
            for alert_id in ended_alerts:
                self._alert_rows.pop(alert_id, None)
            _remember(self._ended, rid, _Ended(through, frozenset(ended_alerts), stay.ended_by), self.max_patients)
            if row is not None and not back:
                _remember(self._left, rid, row, LEFT_CARDS)
            else:  # no card of this stay left: an older stay's must not come back on a cancel
                self._left.pop(rid, None)
            entry = views.stay_end_json(stay, rid, row.ward if row else None, self.zone)
            self._log_recent(stay.ended_at, entry)
            if back:
                assert row is not None
                return self._message(row, entry)
            return {"left": {"row_id": rid, "transition": entry}}

    def apply_stay_resumed(self, stay: StayResumed) -> dict[str, Any] | None:
        """A discharge was cancelled: the stay's records count again, the card that left comes back
        with its history (its next score follows), and the transitions feed says so (once per
        cancel). A card the next stay's records made meanwhile gives it its alerts and leaves."""
        with self._lock:
            if not self._first_time(f"resume-{stay.event_id}"):
                return None
            rid = row_id_for(stay.patient_id, self._key)
            self._ended.pop(rid, None)
            left, row = self._left.pop(rid, None), self._rows.get(rid)
            if left is not None:
                if row is not None:
                    for alert_id, data in row.alerts.items():
                        left.alerts[alert_id] = data
                        self._alert_rows[alert_id] = rid
                    left.log.extend(row.log)
                row = left
                self._put(rid, row)
            if row is not None:
                row.ward = stay.ward or row.ward
                row.updated_at = time.time()
                self._rows.move_to_end(rid)
            entry = views.stay_resumed_json(stay, rid, row.ward if row else None, self.zone)
            self._log_recent(stay.cancelled_at, entry)
            if row is None:  # no card to bring back (it left long ago): the next score shows one
                return {"transition": entry}
            return self._message(row, entry)

    def ended(self, row_id: str) -> tuple[datetime, str] | None:
        """When and by what (``discharge``, ``transfer_out``) the stay of a patient who left the ward
        view ended (the patient page says so)."""
        with self._lock:
            ended = self._ended.get(row_id)
            return (ended.through, ended.by) if ended else None

    def apply_score(self, score: RiskScore) -> dict[str, Any] | None:
        with self._lock:
            if self._of_ended_stay(score.patient_id, score.observed_at):
                return None
            row = self._row(score.patient_id)
            if row.hour is not None and score.hour < row.hour:
                if row.observed_at is not None and score.observed_at <= row.observed_at:
                    return self._message(row)  # late (replayed) score: keep the newest
                # a lower hour observed later: the worker restarted the hour index (a new stay, a gap
                # of 7 days or the Redis window expired, none with a vigil.stays record): the patient
                # now, and trends of the new window only (hours of two windows do not share an axis)
                _forget_scores(row)
            row.ward = score.ward or row.ward
            row.hour = score.hour
            row.observed_at = score.observed_at
            row.news2 = score.news2.model_dump(mode="json")
            best = max(score.models, key=lambda m: (m.model == "combined", m.probability), default=None)
            row.risk = best.probability if best else None
            row.threshold = best.threshold if best else None
            row.risk_model = f"{best.model} {best.version}" if best else None
            row.top_features = [f.model_dump(mode="json") for f in best.top_features[:8]] if best else []
            row.vitals = {k: score.vitals.get(k) for k in (*TREND_CODES, "MAP", "FiO2") if k in score.vitals}
            for code in (*TREND_CODES, "news2", "risk"):
                value = score.news2.total if code == "news2" else row.risk if code == "risk" else score.vitals.get(code)
                points = row.trends.setdefault(code, deque(maxlen=TREND_POINTS))
                if points and points[-1][0] == score.hour:
                    points.pop()
                points.append((score.hour, value))
            if row.history and row.history[-1][0] == score.hour:
                row.history.pop()
            row.history.append((score.hour, score.observed_at.isoformat(), score.news2.total, row.risk))
            return self._message(row)

    def apply_alert(self, alert: Alert) -> dict[str, Any] | None:
        with self._lock:
            if not self._first_time(alert.transition_id):
                return None  # at-least-once upstream: dedupe on transition_id
            if self._of_ended_stay(alert.patient_id, alert.at, alert.alert_id):
                return None
            if alert.state == "resolved" and row_id_for(alert.patient_id, self._key) not in self._rows:
                # of a patient not on the view (its card evicted, or opened before the backfill's
                # window): nothing to take off, and an empty "NEWS2 – unknown" card is no patient
                self._alert_rows.pop(alert.alert_id, None)
                return None
            row = self._row(alert.patient_id)
            row.ward = alert.ward or row.ward
            data = alert.model_dump(mode="json", exclude={"patient_id", "news2"})
            data["news2_total"] = alert.news2.total if alert.news2 else None
            previous = row.alerts.get(alert.alert_id)
            if previous is not None:
                # ack and timer transitions carry no score: keep what raised it (explanation, "then")
                ex = data["explanation"]
                if not ex["rule_breakdown"] and not ex["top_features"]:
                    data["explanation"] = previous["explanation"]
                for key in ("opened_at", "opened_news2", "opened_risk", "threshold", "vitals", "news2_total", "risk"):
                    if data.get(key) in (None, {}):
                        data[key] = previous.get(key)
                data["raised_at"] = data["at"] if alert.state in ("open", "escalated") else previous.get("raised_at")
            else:
                data["raised_at"] = data["at"]
            if alert.state == "resolved":
                row.alerts.pop(alert.alert_id, None)
                self._alert_rows.pop(alert.alert_id, None)
            else:
                row.alerts[alert.alert_id] = data
                self._alert_rows[alert.alert_id] = row.row_id
            transition = views.transition_json(data, row, self.zone)
            row.log.append(transition)
            self._log_recent(alert.at, transition)
            return self._message(row, transition)

    def apply_treatment(self, score: TreatmentScore) -> dict[str, Any] | None:
        """The patient's care score (the treatment agent's, streaming: ``as_of_min`` set). The answer
        to a submitted plan (``request_id`` set, or no ``as_of_min``) is what that plan would score,
        not the patient's care: it joins no card and makes none."""
        if not score.patient_id or score.request_id is not None or score.as_of_min is None:
            return None
        with self._lock:
            if self._of_ended_stay(score.patient_id, score.time_zero):
                return None
            row = self._row(score.patient_id)
            row.treatment = score
            return self._message(row)

    def alert_target(self, alert_id: str) -> tuple[str, dict[str, Any]] | None:
        """(patient_id, alert) of a known active alert: the ack needs the key, the URL never carries it."""
        with self._lock:
            rid = self._alert_rows.get(alert_id)
            row = self._rows.get(rid) if rid else None
            if row is None or alert_id not in row.alerts:
                return None
            return row.patient_id, dict(row.alerts[alert_id])

    def patient(self, row_id: str) -> dict[str, Any] | None:
        """One patient's page: the card, its risk and NEWS2 history, and every alert transition seen."""
        with self._lock:
            row = self._rows.get(row_id)
            if row is None:
                return None
            return views.patient_json(row, self.zone)

    def snapshot(self, ward: str | None = None) -> dict[str, Any]:
        with self._lock:
            rows = [views.row_json(r, self.zone) for r in self._rows.values() if ward is None or r.ward == ward]
            recent = [entry for _, entry in self._recent[-50:]]
            wards = sorted({r.ward for r in self._rows.values() if r.ward})
        rows.sort(key=lambda r: r["sort_key"], reverse=True)
        metrics.WARD_PATIENTS.set(len(self._rows))
        return {"patients": rows, "recent": recent[::-1], "wards": wards, "drift": self.drift.snapshot()}

    def __len__(self) -> int:
        return len(self._rows)
