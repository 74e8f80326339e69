"""HL7v2 times without an offset (MSH-7 and OBX-14 both local, as most feeds send them) are the
sender's local time: the site's zone, ``VIGIL_INGEST__HL7_TIMEZONE``, summer time included. They
were read as UTC by every caller: in Berlin each real-time result was dead-lettered ``clock_skew``
(an hour in the future), in New York placed four hours early."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import typer
from typer.testing import CliRunner

from vigil.infra.settings import MllpSettings, get_settings
from vigil.schemas import topics
from vigil.schemas.codecs.hl7v2 import decode_hl7v2
from vigil.schemas.codecs.mllp import Frame, frame

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


def oru(local_stamp: str) -> bytes:
    return (
        f"MSH|^~\\&|MON|ICU|VIGIL|HOSP|{local_stamp}||ORU^R01|M1|P|2.5.1\r"
        "PID|||4420011^^^HOSP^MR\rPV1||I|ICU-3\r"
        f"OBX|1|NM|2524-7^Lactate^LN||4.5|mmol/L|||||F|||{local_stamp}\r"
    ).encode()


@pytest.fixture
def zone_setting(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Set ``VIGIL_INGEST__HL7_TIMEZONE`` for one test (the settings are cached: cleared around it)."""

    def set_zone(name: str) -> None:
        monkeypatch.setenv("VIGIL_INGEST__HL7_TIMEZONE", name)
        get_settings.cache_clear()

    yield set_zone
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("zone", "local", "utc"),
    [
        (BERLIN, "202403151425", datetime(2024, 3, 15, 13, 25, tzinfo=UTC)),  # CET, +01:00
        (BERLIN, "202407151425", datetime(2024, 7, 15, 12, 25, tzinfo=UTC)),  # CEST, +02:00
        (NEW_YORK, "202403081425", datetime(2024, 3, 8, 19, 25, tzinfo=UTC)),  # EST, before the change
        (NEW_YORK, "202403151425", datetime(2024, 3, 15, 18, 25, tzinfo=UTC)),  # EDT, after it
    ],
)
def test_a_local_time_takes_the_offset_of_its_own_date(zone: ZoneInfo, local: str, utc: datetime) -> None:
    (event,) = decode_hl7v2(oru(local), default_tz=zone).events
    assert event.observed_at == utc
    # received a minute later: accepted, not clock_skew
    checked = decode_hl7v2(oru(local), default_tz=zone).checked(utc.replace(minute=26))
    assert [e.code for e in checked.events] == ["Lactate"] and checked.rejected == []


def test_the_setting_is_checked_when_the_settings_load() -> None:
    from vigil.infra.settings import IngestSettings
    from vigil.schemas.errors import UserError

    assert IngestSettings().hl7_zone() == UTC  # the default, as before
    assert IngestSettings(hl7_timezone="Europe/Berlin").hl7_zone() == BERLIN
    for bad in ("Mars/Olympus", "Europe", "", "CET+1"):
        with pytest.raises(UserError, match="VIGIL_INGEST__HL7_TIMEZONE") as refused:
            IngestSettings(hl7_timezone=bad)
        assert "\n" not in str(refused.value)  # one line
    with pytest.raises(UserError, match="'Europe' is not a zone of the IANA database"):  # as the ward's zone says
        IngestSettings(hl7_timezone="Europe")


def test_the_setting_is_read_from_the_environment(zone_setting) -> None:  # type: ignore[no-untyped-def]
    zone_setting("America/New_York")
    assert get_settings().ingest.hl7_zone() == NEW_YORK


def test_the_interop_agent_decodes_with_the_sites_zone() -> None:
    from vigil.agents import interop

    assert interop.settings.ingest.hl7_zone() == interop.HL7_ZONE
    original, interop.HL7_ZONE = interop.HL7_ZONE, BERLIN
    try:
        (item,) = interop.hl7v2_message(oru("202403151425"))
    finally:
        interop.HL7_ZONE = original
    assert [e.observed_at for e in item.result.events] == [datetime(2024, 3, 15, 13, 25, tzinfo=UTC)]


def test_the_mllp_listener_decodes_with_the_sites_zone(zone_setting) -> None:  # type: ignore[no-untyped-def]
    from vigil.agents.mllp import Tally, outcome_of, serve

    now = datetime(2024, 3, 15, 13, 26, tzinfo=UTC)
    out = outcome_of(Frame(oru("202403151425")), 10_000, now, default_tz=BERLIN)
    assert out.code == "AA" and out.dead_letters == 0
    (record,) = out.records
    assert json.loads(record[2])["observed_at"] == "2024-03-15T13:25:00Z"
    # `vigil mllp` passes no zone: the listener reads the setting
    zone_setting("Europe/Berlin")
    sent: list[bytes] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        publish = lambda records: sent.extend(v for t, _, v in records if t == topics.EVENTS_RAW)  # noqa: E731
        server = asyncio.create_task(serve(publish, MllpSettings(), "127.0.0.1", 0, stop, Tally(), bound.set_result))
        reader, writer = await asyncio.open_connection("127.0.0.1", await bound)
        writer.write(frame(oru(datetime.now(BERLIN).strftime("%Y%m%d%H%M"))))
        await writer.drain()
        await reader.readuntil(b"\x1c\r")
        writer.close()
        stop.set()
        await asyncio.wait_for(server, timeout=5)

    asyncio.run(scenario())
    (event,) = [json.loads(value) for value in sent]  # in UTC it would be an hour or two ahead: clock_skew
    observed = datetime.fromisoformat(event["observed_at"])
    assert abs((datetime.now(UTC) - observed).total_seconds()) < 120


def test_convert_reads_the_setting_and_its_tz_option(app: typer.Typer, tmp_path: Path, zone_setting) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "local.hl7"
    path.write_bytes(oru("202403151425"))

    def observed(*options: str) -> str:
        result = CliRunner().invoke(app, ["convert", "--from", "hl7v2", str(path), *options])
        assert result.exit_code == 0, result.output
        return str(json.loads(result.stdout.splitlines()[0])["observed_at"])

    zone_setting("Europe/Berlin")
    assert observed() == "2024-03-15T13:25:00Z"
    assert observed("--tz", "America/New_York") == "2024-03-15T18:25:00Z"
    assert observed("--tz", "UTC") == "2024-03-15T14:25:00Z"
    refused = CliRunner().invoke(app, ["convert", "--from", "hl7v2", str(path), "--tz", "Mars/Olympus"])
    assert refused.exit_code != 0 and "--tz" in str(refused.exception)
