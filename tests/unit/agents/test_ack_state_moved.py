"""An acknowledgement batch writes a patient's alert lifecycle only where it is still as the batch read
it: a worker that lost the partition in a rebalance wrote its older copy over the new owner's newer
lifecycle (its newer alert, and the count of alerts the ids come from, gone); the batch is handled
again instead (``StateMoved``, a transient error for ``run_batch``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from vigil.agents import alert
from vigil.agents.guard import StateMoved, is_transient
from vigil.infra.redis import alert_key
from vigil.models.alerting import ActiveAlert, AlertPolicy, PatientAlertState
from vigil.schemas.alerts import AlertAck

OPEN = PatientAlertState(patient_id="p1", active=ActiveAlert("a1", "open", "high", "news2", 0.0, 0))


class Store:
    def __init__(self, moved: bool) -> None:
        self.blob = OPEN.to_bytes()
        self.moved = moved
        self.written: dict[str, Any] = {}

    async def load_blobs(self, keys: list[str]) -> list[bytes]:
        return [self.blob for _ in keys]

    async def save_alerts_if_unchanged(self, alerts: dict[str, tuple[bytes | None, PatientAlertState]]) -> list[str]:
        assert all(read == self.blob for read, _ in alerts.values())  # compared with what was read
        if self.moved:
            return list(alerts)
        self.written.update({k: s for k, (_, s) in alerts.items()})
        return []

    async def save_alerts(self, alerts: Any) -> None:
        raise AssertionError("a plain write over whatever is there")


class Sent:
    async def send(self, topic: Any, key: Any, value: bytes) -> None:
        pass

    async def flush(self) -> None:
        pass


@pytest.mark.parametrize("moved", [False, True])
def test_an_answer_is_written_only_over_the_lifecycle_it_read(monkeypatch: pytest.MonkeyPatch, moved: bool) -> None:
    store = Store(moved)
    rt = SimpleNamespace(store=store, alert_lock=asyncio.Lock(), policy=AlertPolicy())
    monkeypatch.setattr(alert, "runtime", lambda: rt)
    ack = AlertAck(alert_id="a1", patient_id="p1", action="acknowledge", by="rn", at=datetime.now(UTC))
    if moved:
        with pytest.raises(StateMoved) as raised:
            asyncio.run(alert.ack_batch([ack], Sent()))  # type: ignore[arg-type]
        assert is_transient(raised.value)  # run_batch handles the batch again
        assert store.written == {}
    else:
        (done,) = asyncio.run(alert.ack_batch([ack], Sent()))  # type: ignore[arg-type]
        assert done.state == "acknowledged"
        written = store.written[alert_key("p1")]
        assert written.active is not None and written.active.state == "acknowledged"
