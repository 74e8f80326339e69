"""The ward as the dashboard sees it: a bounded, thread-safe model of each patient's latest state (pure).

``WardModel.apply(topic, value)`` takes one record of ``vigil.scores``, ``vigil.alerts``,
``vigil.treatment.scores`` or ``vigil.drift`` and returns the changed row (and the alert transition,
if any; for drift, the wards' drift indicator) for the live feed. Rows are addressed by an opaque
``row_id`` (keyed HMAC of the patient id) so no patient identifier appears in a URL; the page shows
the patient label because the clinician needs it.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from vigil.agents.web import metrics
from vigil.agents.web.drift import WardDriftBoard
from vigil.models.window import WINDOW_HOURS
from vigil.schemas import topics
from vigil.schemas.alerts import Alert
from vigil.schemas.drift import WardDrift
from vigil.schemas.scores import RiskScore
from vigil.schemas.treatment import TreatmentScore

BAND_RANK = {"low": 0, "low-medium": 1, "medium": 2, "high": 3}
TREND_CODES = ("HR", "Resp", "SBP", "O2Sat", "Temp")
TREND_POINTS = WINDOW_HOURS  # one per scored hour: the model's window
RECENT_TRANSITIONS = 200

_SCORE = TypeAdapter(RiskScore)
_ALERT = TypeAdapter(Alert)
_TREATMENT = TypeAdapter(TreatmentScore)
_DRIFT = TypeAdapter(WardDrift)


def row_id_for(patient_id: str, key: bytes) -> str:
    return hmac.new(key, patient_id.encode(), hashlib.sha256).hexdigest()[:16]


def colour_band(news2: dict[str, Any] | None) -> str:
    """The band the scorer published with the NEWS2 record (``models.early_warning.news2_band``,
    RCP 2017 chart 2, a single parameter scoring 3 included): computed once, never here."""
    return str(news2.get("band") or "unknown") if news2 else "unknown"


@dataclass
class PatientRow:
    row_id: str
    patient_id: str
    ward: str | None = None
    hour: int | None = None
    news2: dict[str, Any] | None = None
    risk: float | None = None
    risk_model: str | None = None
    top_features: list[dict[str, Any]] = field(default_factory=list)
    vitals: dict[str, float | None] = field(default_factory=dict)
    trends: dict[str, deque[tuple[int, float | None]]] = field(default_factory=dict)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # open/escalated/acknowledged
    treatment: dict[str, Any] | None = None
    updated_at: float = 0.0

    def as_json(self) -> dict[str, Any]:
        band = colour_band(self.news2)
        return {
            "row_id": self.row_id,
            "label": self.patient_id,
            "ward": self.ward,
            "hour": self.hour,
            "band": band,
            "news2": self.news2,
            "risk": self.risk,
            "risk_model": self.risk_model,
            "top_features": self.top_features,
            "vitals": self.vitals,
            "trends": {k: [[h, v] for h, v in pts] for k, pts in self.trends.items()},
            "alerts": sorted(self.alerts.values(), key=lambda a: a["at"], reverse=True),
            "treatment": self.treatment,
            "updated_at": self.updated_at,
            "sort_key": self.sort_key(),
        }

    def sort_key(self) -> list[float]:
        """Highest risk first: an unacknowledged alert, an acknowledged one, NEWS2 band, total, model."""
        unacked = max(
            (BAND_RANK.get(a["severity"], 0) + 1 for a in self.alerts.values() if a["state"] != "acknowledged"),
            default=0,
        )
        acked = max(
            (BAND_RANK.get(a["severity"], 0) + 1 for a in self.alerts.values() if a["state"] == "acknowledged"),
            default=0,
        )
        total = (self.news2 or {}).get("total", -1)
        return [unacked, acked, BAND_RANK.get(colour_band(self.news2), -1), total, self.risk or 0.0]


class WardModel:
    """Bounded (``max_patients``, least recently updated evicted), thread-safe latest state per patient."""

    def __init__(self, hash_key: bytes, max_patients: int = 2000) -> None:
        self._key = hash_key
        self.max_patients = max_patients
        self._rows: OrderedDict[str, PatientRow] = OrderedDict()
        self._alert_rows: dict[str, str] = {}  # alert_id -> row_id (for acks by alert id)
        self._recent: deque[dict[str, Any]] = deque(maxlen=RECENT_TRANSITIONS)
        self._seen_transitions: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self.drift = WardDriftBoard()

    def _row(self, patient_id: str) -> PatientRow:
        rid = row_id_for(patient_id, self._key)
        row = self._rows.get(rid)
        if row is None:
            row = PatientRow(rid, patient_id)
            self._rows[rid] = row
            while len(self._rows) > self.max_patients:
                _, old = self._rows.popitem(last=False)
                for alert_id in old.alerts:
                    self._alert_rows.pop(alert_id, None)
        self._rows.move_to_end(rid)
        row.updated_at = time.time()
        return row

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
        except ValidationError:
            metrics.FEED_ERRORS.labels(topic).inc()
        return None

    def apply_score(self, score: RiskScore) -> dict[str, Any]:
        with self._lock:
            row = self._row(score.patient_id)
            if row.hour is not None and score.hour < row.hour:
                return {"row": row.as_json()}  # late (replayed) score: keep the newest
            row.ward = score.ward or row.ward
            row.hour = score.hour
            row.news2 = score.news2.model_dump(mode="json")
            best = max(score.models, key=lambda m: (m.model == "combined", m.probability), default=None)
            row.risk = best.probability if best else None
            row.risk_model = f"{best.model} {best.version}" if best else None
            row.top_features = [f.model_dump(mode="json") for f in best.top_features[:5]] if best else []
            row.vitals = {k: score.vitals.get(k) for k in (*TREND_CODES, "MAP", "FiO2") if k in score.vitals}
            for code in (*TREND_CODES, "news2", "risk"):
                value = score.news2.total if code == "news2" else row.risk if code == "risk" else score.vitals.get(code)
                points = row.trends.setdefault(code, deque(maxlen=TREND_POINTS))
                if points and points[-1][0] == score.hour:
                    points.pop()
                points.append((score.hour, value))
            return {"row": row.as_json()}

    def apply_alert(self, alert: Alert) -> dict[str, Any] | None:
        with self._lock:
            if alert.transition_id in self._seen_transitions:
                return None  # at-least-once upstream: dedupe on transition_id
            self._seen_transitions[alert.transition_id] = None
            while len(self._seen_transitions) > 20 * RECENT_TRANSITIONS:
                self._seen_transitions.popitem(last=False)
            row = self._row(alert.patient_id)
            row.ward = alert.ward or row.ward
            data = alert_json(alert)
            if alert.state == "resolved":
                row.alerts.pop(alert.alert_id, None)
                self._alert_rows.pop(alert.alert_id, None)
            else:
                previous = row.alerts.get(alert.alert_id)
                ex = data["explanation"]
                if previous and not ex["rule_breakdown"] and not ex["top_features"]:
                    # ack and timer transitions carry no score: keep the explanation that raised it
                    data["explanation"] = previous["explanation"]
                row.alerts[alert.alert_id] = data
                self._alert_rows[alert.alert_id] = row.row_id
            transition = {**data, "row_id": row.row_id, "label": row.patient_id, "ward": row.ward}
            self._recent.append(transition)
            return {"row": row.as_json(), "transition": transition}

    def apply_treatment(self, score: TreatmentScore) -> dict[str, Any] | None:
        if not score.patient_id:
            return None
        with self._lock:
            row = self._row(score.patient_id)
            row.treatment = {
                "score": score.score,
                "items": [i.model_dump(mode="json") for i in score.items],
                "suggestions": [s.model_dump(mode="json") for s in score.suggestions[:5]],
                "as_of_min": score.as_of_min,
                "projected_score": score.projected_score,
            }
            return {"row": row.as_json()}

    def alert_target(self, alert_id: str) -> tuple[str, dict[str, Any]] | None:
        """(patient_id, alert) of a known active alert: the ack needs the key, the URL never carries it."""
        with self._lock:
            rid = self._alert_rows.get(alert_id)
            row = self._rows.get(rid) if rid else None
            if row is None or alert_id not in row.alerts:
                return None
            return row.patient_id, dict(row.alerts[alert_id])

    def snapshot(self, ward: str | None = None) -> dict[str, Any]:
        with self._lock:
            rows = [r.as_json() for r in self._rows.values() if ward is None or r.ward == ward]
            recent = list(self._recent)[-50:]
            wards = sorted({r.ward for r in self._rows.values() if r.ward})
        rows.sort(key=lambda r: r["sort_key"], reverse=True)
        metrics.WARD_PATIENTS.set(len(self._rows))
        return {"patients": rows, "recent": recent[::-1], "wards": wards, "drift": self.drift.snapshot()}

    def __len__(self) -> int:
        return len(self._rows)


def alert_json(alert: Alert) -> dict[str, Any]:
    ex = alert.explanation
    return {
        "alert_id": alert.alert_id,
        "transition_id": alert.transition_id,
        "state": alert.state,
        "severity": alert.severity,
        "trigger": alert.trigger,
        "reason": alert.reason,
        "at": alert.at.isoformat(),
        "hour": alert.hour,
        "risk": alert.risk,
        "by": alert.by,
        "news2_total": alert.news2.total if alert.news2 else None,
        "explanation": {
            "rule_breakdown": ex.rule_breakdown,
            "missing": ex.missing,
            "top_features": [f.model_dump(mode="json") for f in ex.top_features[:5]],
            "trend": [t.model_dump(mode="json") for t in ex.trend[-12:]],
            "summary": ex.summary,
        },
    }
