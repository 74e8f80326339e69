"""What the ward page shows for a patient row, an alert and a transition (JSON for the page; pure but
for the wall clock a care suggestion's "until due" counts from, ``row_json(now=...)``).

Every word and number comes from ``schemas.display`` (risk in percent, times with date and zone in the
ward's zone, NEWS2 and model features in clinical words) and the care score from
``models.treatment.view``, so the dashboard and the terminal say the same thing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Final

from vigil.models.early_warning import news2_band
from vigil.models.treatment.view import care_view
from vigil.schemas.display import (
    clock,
    feature_parts,
    iso_local,
    missing_text,
    news2_text,
    percent,
    risk_text,
    vital_text,
)

if TYPE_CHECKING:
    from vigil.agents.web.ward import PatientRow
    from vigil.schemas.stays import StayEnded, StayResumed

BAND_RANK = {"low": 0, "low-medium": 1, "medium": 2, "high": 3}
UNACKNOWLEDGED = ("open", "escalated")
# An ICU charts vital signs at least hourly (PhysioNet 2019's rows are hourly; RCP NEWS2 2017 asks for
# hourly or continuous monitoring from a score of 5): a card with nothing newer than two charting
# rounds is no longer the patient now (a monitor unplugged, a transfer never recorded). The page marks
# it from ``stale_at``, counted on the server's clock at each render.
STALE_AFTER: Final = timedelta(hours=2)


def short_id(alert_id: str) -> str:
    """The alert id people read and type: the first 8 characters (``vigil alerts ls`` shows the same)."""
    return alert_id[:8]


def band_of(news2: dict[str, Any] | None) -> str:
    """RCP NEWS2 2017: the response band, a single parameter scoring 3 lifting a low total to low-medium."""
    if not news2:
        return "unknown"
    return news2_band(int(news2.get("total", 0)), bool(news2.get("single_parameter_3")))


def _when(at: str | None, zone: tzinfo) -> str:
    return clock(datetime.fromisoformat(at), zone) if at else "–"


def latest_score_text(row: PatientRow) -> str:
    """The patient's latest score in words: "NEWS2 9 (high): RR 22 +2; risk 62% (alert at 3.0%)"."""
    if not row.news2:
        return ""
    text = news2_text(row.news2["total"], band_of(row.news2), row.news2["parameters"], row.vitals)
    return f"{text}; {risk_text(row.risk, row.threshold)}" if row.risk is not None else text


def alert_view(alert: dict[str, Any], row: PatientRow, zone: tzinfo) -> dict[str, Any]:
    """An active alert with its "then" (what it opened at) and its "now" (the patient's latest score).
    The latest score is "Now …" while it is recent and "Latest (its time) …" once the card is stale
    (``stale_at``): a score of 9 h ago read as the patient now."""
    opened = f"Opened {_when(alert.get('opened_at'), zone)}"
    if alert.get("opened_news2") is not None:
        opened += f" at NEWS2 {alert['opened_news2']}"
    if alert.get("opened_risk") is not None:
        opened += f", risk {percent(alert['opened_risk'])}"
    latest = latest_score_text(row)
    ex = alert.get("explanation") or {}
    snoozed = alert.get("snoozed_until")
    return {
        **_transition_fields(alert, zone),
        "raised_at": alert.get("raised_at"),
        "opened_text": opened,
        "now_text": f"Now {latest}" if latest else "",
        "latest_text": f"Latest ({clock(row.observed_at, zone)}) {latest}" if latest else "",
        "snoozed_until_text": _when(snoozed, zone) if snoozed and alert["state"] == "acknowledged" else None,
        "features": feature_parts(ex.get("top_features") or []),
        "missing_text": missing_text(ex.get("missing") or []),
    }


def sort_key(row: PatientRow) -> list[float]:
    """Highest risk first: an unacknowledged alert, an acknowledged one, NEWS2 band, total, model."""
    unacked = max(
        (BAND_RANK.get(a["severity"], 0) + 1 for a in row.alerts.values() if a["state"] in UNACKNOWLEDGED),
        default=0,
    )
    acked = max(
        (BAND_RANK.get(a["severity"], 0) + 1 for a in row.alerts.values() if a["state"] not in UNACKNOWLEDGED),
        default=0,
    )
    total = (row.news2 or {}).get("total", -1)
    return [unacked, acked, BAND_RANK.get(band_of(row.news2), -1), total, row.risk or 0.0]


def trend_text(code: str, value: float | None) -> str:
    """A trend's latest value as the card writes it: NEWS2 a whole number, risk in percent, a vital
    sign at the chart's precision with the rounding NEWS2 scored it with (the page re-rounds nothing)."""
    if value is None:
        return "–"
    if code == "news2":
        return str(int(value))
    if code == "risk":
        return percent(value)
    return vital_text(code, value)


def row_json(row: PatientRow, zone: tzinfo, now: datetime | None = None) -> dict[str, Any]:
    """A card. ``now`` (the wall clock by default) is what the care score's "until due" counts from."""
    band = band_of(row.news2)
    alerts = sorted(row.alerts.values(), key=lambda a: a["at"], reverse=True)
    raised = [a["raised_at"] for a in row.alerts.values() if a.get("raised_at")]
    return {
        "row_id": row.row_id,
        "label": row.patient_id,
        "ward": row.ward,
        "hour": row.hour,
        "observed_text": clock(row.observed_at, zone) if row.observed_at else "–",
        # the page counts "observed N h ago" from these and marks the card stale from stale_at
        "observed_at": iso_local(row.observed_at, zone),
        "stale_at": iso_local(row.observed_at + STALE_AFTER, zone) if row.observed_at else None,
        "band": band,
        "news2_total": (row.news2 or {}).get("total"),
        "news2_text": news2_text(row.news2["total"], band, row.news2["parameters"], row.vitals) if row.news2 else "",
        "missing_text": missing_text((row.news2 or {}).get("missing") or []),
        "risk": row.risk,
        "risk_pct": percent(row.risk) if row.risk is not None else None,
        "threshold": row.threshold,
        "threshold_pct": percent(row.threshold) if row.threshold is not None else None,
        "risk_model": row.risk_model,
        "features": feature_parts(row.top_features),
        "vitals": row.vitals,
        "trends": {k: [[h, v] for h, v in pts] for k, pts in row.trends.items()},
        "trend_text": {k: trend_text(k, pts[-1][1] if pts else None) for k, pts in row.trends.items()},
        "alerts": [alert_view(a, row, zone) for a in alerts],
        "unacknowledged": any(a["state"] in UNACKNOWLEDGED for a in row.alerts.values()),
        "last_alert_at": max(raised) if raised else None,
        "treatment": care_view(row.treatment, zone, now or datetime.now(UTC)) if row.treatment is not None else None,
        "updated_at": row.updated_at,
        "sort_key": sort_key(row),
    }


def _transition_fields(alert: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    return {
        "alert_id": alert["alert_id"],
        "short_id": short_id(alert["alert_id"]),
        "transition_id": alert["transition_id"],
        "state": alert["state"],
        "severity": alert["severity"],
        "reason": alert["reason"],
        "at": iso_local(datetime.fromisoformat(alert["at"]), zone),
        "at_text": _when(alert["at"], zone),
        "by": alert.get("by"),
        "note": alert.get("note"),
    }


def transition_json(alert: dict[str, Any], row: PatientRow, zone: tzinfo) -> dict[str, Any]:
    """One line of the transitions feed and of the patient's alert history."""
    return {**_transition_fields(alert, zone), "row_id": row.row_id, "label": row.patient_id, "ward": row.ward}


def stay_resumed_json(stay: StayResumed, row_id: str, ward: str | None, zone: tzinfo) -> dict[str, Any]:
    """The transitions feed's line for a patient back on the ward: the discharge (or the transfer out
    of the monitored units) was cancelled."""
    what = "transfer" if stay.cancelled_by == "cancel_transfer" else "discharge"
    return {
        "alert_id": "",
        "short_id": "",
        "transition_id": f"resume-{stay.event_id}",
        "state": "resumed",
        "severity": "unknown",
        "reason": f"{what} cancelled: the stay goes on (ended {clock(stay.cancelled_end, zone)})",
        "at": iso_local(stay.cancelled_at, zone),
        "at_text": clock(stay.cancelled_at, zone),
        "by": None,
        "note": None,
        "row_id": row_id,
        "label": stay.patient_id,
        "ward": stay.ward or ward,
    }


# what the transitions feed says of each end of a stay (``StayEnded.ended_by``): its state chip, its words
STAY_END_LINES: Final[dict[str, tuple[str, str]]] = {
    "discharge": ("discharged", "left the ward"),
    "transfer_out": ("transferred", "moved out of the monitored units"),
    "cancel_admit": ("discharged", "admission cancelled (entered in error, or not admitted)"),
}


def stay_end_json(stay: StayEnded, row_id: str, ward: str | None, zone: tzinfo) -> dict[str, Any]:
    """The transitions feed's line for a patient who left the ward (a discharge, a transfer out of
    the monitored units, or an admission cancelled)."""
    resolved = f"; alert #{short_id(stay.resolved_alert)} resolved" if stay.resolved_alert else ""
    state, why = STAY_END_LINES[stay.ended_by]
    return {
        "alert_id": stay.resolved_alert or "",
        "short_id": "",
        "transition_id": f"stay-{stay.event_id}",
        "state": state,
        "severity": "unknown",
        "reason": f"{why}: the stay ended{resolved}",
        "at": iso_local(stay.ended_at, zone),
        "at_text": clock(stay.ended_at, zone),
        "by": None,
        "note": None,
        "row_id": row_id,
        "label": stay.patient_id,
        "ward": stay.ward or ward,
    }


def patient_json(row: PatientRow, zone: tzinfo) -> dict[str, Any]:
    history = [
        {
            "hour": hour,
            "at": iso_local(datetime.fromisoformat(at), zone),
            "at_text": clock(datetime.fromisoformat(at), zone),
            "news2": news2,
            "risk": risk,
        }
        for hour, at, news2, risk in row.history
    ]
    return {"row": row_json(row, zone), "history": history, "log": list(row.log)[::-1]}
