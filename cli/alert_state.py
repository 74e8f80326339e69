"""The active alerts as the alert agent holds them: ``vigil alerts ls`` and ``ack`` read Redis.

Redis is the lifecycle's source of truth (``vigil:a:<patient hash>``, ``models.alerting.PatientAlertState``):
reading it answers "is this alert still active, and whose is it" at once, where replaying the alerts
topic would take time proportional to its retention. The CLI only reads it (SCAN + MGET); every change
still goes through ``vigil.alerts.acks`` and the alert agent (audited, replay-safe).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vigil.infra.settings import Settings
from vigil.models.alerting import ActiveAlert, PatientAlertState
from vigil.schemas.errors import UserError

ALERT_KEYS = "vigil:a:*"
SHORT_ID = 8  # what the dashboard and `alerts ls` show
MIN_PREFIX = 6


@dataclass(frozen=True)
class ActiveView:
    patient_id: str
    ward: str | None
    alert: ActiveAlert
    news2_now: int | None
    risk_now: float | None

    @property
    def short_id(self) -> str:
        return self.alert.alert_id[:SHORT_ID]

    @property
    def opened_at(self) -> datetime:
        return datetime.fromtimestamp(self.alert.opened_s, tz=UTC)


def redis_client(settings: Settings, url: str | None = None) -> Any:
    """A synchronous client with the stack's credentials (``infra.connect``), at ``url`` when given."""
    from vigil.infra.connect import redis_client as connect

    return connect(settings, url=url, socket_timeout=5, socket_connect_timeout=3)


def active_alerts(client: Any, unreadable: list[str] | None = None) -> Iterator[ActiveView]:
    """Every active alert in Redis. A state that does not parse (damaged) is skipped, its key added to
    ``unreadable`` (it holds the patient's keyed hash, not the id), as the worker's timer skips it: one
    damaged value must not keep a clinician from listing or answering every other alert."""
    keys = list(client.scan_iter(match=ALERT_KEYS, count=1000))
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        for key, blob in zip(chunk, client.mget(chunk), strict=True):
            try:
                state = PatientAlertState.from_bytes(blob)
            except ValueError:  # pydantic's ValidationError: not JSON, or not an alert state
                if unreadable is not None:
                    unreadable.append(key.decode() if isinstance(key, bytes) else str(key))
                continue
            if state.active is None:
                continue
            last = state.trend[-1] if state.trend else None
            yield ActiveView(
                state.patient_id,
                state.ward,
                state.active,
                last[1] if last else None,
                last[2] if last else None,
            )


def typed_alert_id(alert_id: str) -> str:
    """The id as the alert ids are written: the dashboard and ``alerts tail`` show ``#1a2b3c4d``, and a
    clinician pastes it with its '#' (an active alert was "resolved or unknown"), spaces or capitals."""
    return alert_id.strip().removeprefix("#").strip().lower()


def find_alert(client: Any, alert_id: str, patient_id: str | None = None) -> ActiveView:
    """The active alert with this id (or a unique prefix of at least 6 characters); else one clear error."""
    wanted = typed_alert_id(alert_id)
    if len(wanted) < MIN_PREFIX:
        raise UserError(f"alert id {alert_id!r} is too short: give at least {MIN_PREFIX} characters (vigil alerts ls)")
    matches = [v for v in active_alerts(client) if v.alert.alert_id.startswith(wanted)]
    if not matches:
        raise UserError(
            f"no active alert {alert_id}: it is resolved or unknown (`vigil alerts ls` lists active alerts)"
        )
    if len(matches) > 1:
        raise UserError(f"alert id {alert_id} matches {len(matches)} active alerts: give more characters")
    found = matches[0]
    if patient_id is not None and found.patient_id != patient_id:
        raise UserError(f"alert {found.short_id} is not an alert of patient {patient_id} (check --patient)")
    return found
