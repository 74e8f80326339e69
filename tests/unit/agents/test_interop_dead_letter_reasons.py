"""One input refused for several reasons is one dead letter that names them all, the most actionable
first. An ORU^R01 from a site whose HL7 time zone was left at UTC, with its vitals and a BMI OBX
(a code Vigil does not map), was lettered ``unmapped_code`` alone: the decoder's refusals come before
the intake checks, ``vigil_dead_letters_total{reason="clock_skew"}`` stayed 0 and
``vigil deadletters replay --reason clock_skew`` sent nothing once the zone was set. Each intake is
driven on its own pure path: the HL7v2 agent's batch, the MLLP listener's item, the FHIR intake's body."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import REGISTRY

from tests.unit.agents.test_interop_originals import Capture
from vigil.agents import interop
from vigil.agents.mllp import Tally, handle, outcome_of
from vigil.agents.web.intake import decode_intake
from vigil.infra.publish import Record
from vigil.infra.settings import MllpSettings
from vigil.schemas import topics
from vigil.schemas.codecs.mllp import Frame
from vigil.schemas.deadletter import DeadLetter

BERLIN = ZoneInfo("Europe/Berlin")


def berlin_oru(now: datetime) -> bytes:
    """An ORU^R01 as a Berlin monitor gateway sends it: local times without an offset; HR, RR, SpO2
    and a BMI (LOINC 39156-5, not in Vigil's table)."""
    local = now.astimezone(BERLIN).strftime("%Y%m%d%H%M%S")
    return (
        f"MSH|^~\\&|MON|ICU|VIGIL|H|{local}||ORU^R01|M1|P|2.5.1\r"
        "PID|1||p1^^^H^MR\rPV1|1|I|ICU-3\r"
        f"OBR|1|||85353-1^VS^LN|||{local}\r"
        f"OBX|1|NM|8867-4^HR^LN||128|/min|||||F|||{local}\r"
        f"OBX|2|NM|9279-1^RR^LN||28|/min|||||F|||{local}\r"
        f"OBX|3|NM|59408-5^SpO2^LN||86|%|||||F|||{local}\r"
        f"OBX|4|NM|39156-5^BMI^LN||27.4|kg/m2|||||F|||{local}\r"
    ).encode()


def counted(reason: str) -> float:
    return REGISTRY.get_sample_value("vigil_dead_letters_total", {"reason": reason}) or 0.0


def letters_of(records: Sequence[tuple[Any, Any, bytes]]) -> list[DeadLetter]:
    return [DeadLetter.model_validate_json(v) for t, _, v in records if t == topics.DEADLETTER]


def test_the_hl7v2_agents_letter_names_the_sites_time_zone_first_and_counts_it(monkeypatch) -> None:
    monkeypatch.setattr(interop, "HL7_ZONE", UTC)  # the site left VIGIL_INGEST__HL7_TIMEZONE at UTC
    payload = berlin_oru(datetime.now(UTC))
    message = SimpleNamespace(topic=topics.INGEST_HL7V2, partition=0, offset=9, key=None, value=payload)
    publisher = Capture()
    before = counted("clock_skew"), counted("unmapped_code")

    async def one_batch() -> None:
        await interop.interop_batch([SimpleNamespace(message=message)], publisher, decode=interop.hl7v2_message)  # type: ignore[list-item]
        await publisher.flush()  # the letters are counted once the broker has them

    asyncio.run(one_batch())
    assert not [t for t, _, _ in publisher.sent if t == topics.EVENTS_RAW]  # every vital is in the future
    (letter,) = letters_of(publisher.sent)
    assert letter.reason == "clock_skew" and letter.reasons == ("clock_skew", "unmapped_code")
    assert letter.original() == payload and letter.detail.startswith("4 rejections: unmapped_code: ")
    # one letter, counted once under each of its reasons: the operator sees the time zone
    assert (counted("clock_skew") - before[0], counted("unmapped_code") - before[1]) == (1, 1)


def test_the_mllp_listener_letters_and_counts_the_same_message_alike() -> None:
    now = datetime.now(UTC)
    out = outcome_of(Frame(berlin_oru(now)), 10_000, now)
    assert out.code == "AE" and out.text == "4 parts refused: clock_skew x3, unmapped_code"  # the ACK as before
    (letter,) = letters_of(out.records)
    assert letter.reason == "clock_skew" and letter.reasons == ("clock_skew", "unmapped_code")

    stored: list[Record] = []
    tally, before = Tally(), (counted("clock_skew"), counted("unmapped_code"))
    answer = asyncio.run(handle(Frame(berlin_oru(now)), stored.extend, MllpSettings(), tally))
    assert answer is not None and b"MSA|AE|M1|" in answer
    assert tally.dead_letters == 1 and len(letters_of(stored)) == 1
    assert (counted("clock_skew") - before[0], counted("unmapped_code") - before[1]) == (1, 1)


def test_the_fhir_intakes_letter_of_an_entry_names_every_reason_and_counts_each() -> None:
    now = datetime.now(UTC).replace(microsecond=0)

    def quantity(value: float) -> dict[str, Any]:
        return {"value": value, "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}

    def component(code: str, value: float) -> dict[str, Any]:
        return {"code": {"coding": [{"system": "http://loinc.org", "code": code}]}, "valueQuantity": quantity(value)}

    blood_pressure = {
        "resourceType": "Observation",
        "id": "bp1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": (now + timedelta(hours=2)).isoformat(),  # a sender's clock two hours ahead
        "component": [component("0000-0", 1), component("8480-6", 120), component("8462-4", 80)],
    }
    body = json.dumps({"resourceType": "Bundle", "type": "batch", "entry": [{"resource": blood_pressure}]})
    result = decode_intake(io.BytesIO(body.encode()), "/fhir", 20, now)
    assert [r.reason for r in result.rejected] == ["unmapped_code", "clock_skew", "clock_skew"]  # the answer's
    (letter,) = letters_of(result.records)
    assert letter.reason == "clock_skew" and letter.reasons == ("clock_skew", "unmapped_code")
    assert result.letter_reasons == [("clock_skew", "unmapped_code")] and result.dead_letters == 1


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_a_site_whose_zone_is_set_has_no_clock_skew_letter(zone: str) -> None:
    """The same message once the site's zone is set: its vitals are read, its BMI alone is lettered."""
    now = datetime.now(UTC)
    out = outcome_of(Frame(berlin_oru(now)), 10_000, now, default_tz=ZoneInfo(zone))
    (letter,) = letters_of(out.records)
    expected = ("clock_skew", "unmapped_code") if zone == "UTC" else ("unmapped_code",)
    assert letter.reasons == expected and out.events == (0 if zone == "UTC" else 3)
