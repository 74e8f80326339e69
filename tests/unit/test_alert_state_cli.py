"""``vigil alerts ls`` and ``ack`` read the lifecycles in Redis: one damaged value is skipped and
named, never the end of the listing (it stopped every clinician's CLI acknowledgement before)."""

from __future__ import annotations

from typing import Any

import pytest

from vigil.cli.alert_state import active_alerts, find_alert
from vigil.models.alerting import ActiveAlert, PatientAlertState
from vigil.schemas.errors import UserError


class Client:
    """SCAN and MGET over a dict, as redis-py's sync client answers them (bytes)."""

    def __init__(self, values: dict[bytes, bytes]) -> None:
        self.values = values

    def scan_iter(self, match: str, count: int) -> Any:
        return iter(self.values)

    def mget(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.values.get(k) for k in keys]


def state(alert_id: str) -> bytes:
    active = ActiveAlert(alert_id, "open", "high", "news2_band:high", 0.0, 0)
    return PatientAlertState(patient_id="p1", active=active).to_bytes()


def test_a_damaged_alert_state_is_skipped_and_named() -> None:
    client = Client({b"vigil:a:1": state("abcdef123456"), b"vigil:a:2": b'{"active": "nons', b"vigil:a:3": b"x"})
    unreadable: list[str] = []
    assert [v.alert.alert_id for v in active_alerts(client, unreadable)] == ["abcdef123456"]
    assert unreadable == ["vigil:a:2", "vigil:a:3"]
    assert find_alert(client, "abcdef").patient_id == "p1"
    with pytest.raises(UserError, match="no active alert"):
        find_alert(client, "999999")
