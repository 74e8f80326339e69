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


def test_an_id_pasted_as_the_dashboard_shows_it_finds_the_alert() -> None:
    """The dashboard and `alerts tail` show `#1a2b3c4d`; with its '#' an active alert was "resolved or unknown"."""
    client = Client({b"vigil:a:1": state("1a2b3c4d5e6f")})
    for typed in ("#1a2b3c4d", " #1A2B3C4D ", "# 1a2b3c", "1a2b3c4d"):
        assert find_alert(client, typed).short_id == "1a2b3c4d"
    with pytest.raises(UserError, match="too short"):
        find_alert(client, "#1a2b")  # the '#' is not one of the 6 characters


def test_the_ack_log_line_goes_to_stderr_and_the_json_summary_ends_stdout(capsys) -> None:  # type: ignore[no-untyped-def]
    """structlog's defaults printed the `alert_ack` line on stdout, before the summary a script reads."""
    import json
    import logging
    from types import SimpleNamespace
    from unittest import mock

    import structlog

    from vigil.cli import main as cli_main
    from vigil.cli.alert_state import ActiveView

    view = ActiveView("p1", "MICU", ActiveAlert("1a2b3c4d5e6f7788", "open", "high", "news2", 0.0, 0), 7, 0.3)
    sent = SimpleNamespace(get=lambda timeout: SimpleNamespace(partition=0, offset=5))
    producer = SimpleNamespace(send=lambda *a, **k: sent, close=lambda timeout=None: None)
    config, handlers = structlog.get_config(), logging.getLogger().handlers[:]
    try:
        with (
            mock.patch("vigil.cli.preflight.require_redis"),
            mock.patch("vigil.cli.preflight.require_broker"),
            mock.patch("vigil.cli.alert_state.redis_client"),
            mock.patch("vigil.cli.alert_state.find_alert", return_value=view),
            mock.patch("vigil.infra.connect.kafka_producer", return_value=producer),
            pytest.raises(SystemExit) as ended,
        ):
            cli_main.main(["alerts", "ack", "1a2b3c4d", "--by", "dr.k", "--json"])
    finally:
        structlog.configure(**config)
        logging.getLogger().handlers[:] = handlers
    out, err = capsys.readouterr()
    assert ended.value.code == 0 and "alert_ack" not in out
    assert json.loads(out.strip().splitlines()[-1])["short_id"] == "1a2b3c4d"
    (line,) = [json.loads(x) for x in err.splitlines() if "alert_ack" in x]  # JSON, through the redaction
    assert line["event"] == "alert_ack" and line["user"] == "dr.k" and "patient_id" not in line
