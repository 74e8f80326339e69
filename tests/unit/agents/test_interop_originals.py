"""The FHIR agent's dead letters carry the refused part's bytes, also when the part is refused by the
intake rules after decoding (a value out of range), not only by the decoder."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from tests.unit.codecs.test_codec_fhir import encounter
from vigil.agents.interop import fhir_entries, interop_batch
from vigil.agents.runtime import Publisher
from vigil.schemas import topics
from vigil.schemas.deadletter import DeadLetter


class Capture(Publisher):
    def __init__(self) -> None:
        super().__init__(SimpleNamespace(get_topic_name=lambda: topics.DEADLETTER))  # type: ignore[arg-type]
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    async def send(self, topic: Any, key: str | bytes | None, value: bytes) -> None:
        self.sent.append((topic.get_topic_name(), key.encode() if isinstance(key, str) else key, value))


def observation(value: float) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org", "code": "/min"},
    }


def test_an_entry_out_of_range_is_dead_lettered_with_its_own_bytes() -> None:
    implausible = observation(1000)
    payload = json.dumps(
        {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": observation(80)}, {"resource": implausible}]}
    )
    message = SimpleNamespace(topic=topics.INGEST_FHIR, partition=0, offset=5, key=b"p1", value=payload.encode())
    publisher = Capture()
    asyncio.run(interop_batch([SimpleNamespace(message=message)], publisher, decode=fhir_entries))  # type: ignore[list-item]
    assert sum(t == topics.EVENTS_RAW for t, _, _ in publisher.sent) == 1
    (letter,) = [DeadLetter.model_validate_json(v) for t, _, v in publisher.sent if t == topics.DEADLETTER]
    assert letter.reason == "out_of_range" and letter.source_topic == topics.INGEST_FHIR
    assert json.loads(letter.original()) == {"resource": implausible}  # was empty: b""


def test_a_messages_discharge_is_sent_after_its_other_events() -> None:
    finished = encounter(period={"end": datetime.now(UTC).replace(microsecond=0).isoformat()})
    payload = json.dumps(
        {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": finished}, {"resource": observation(80)}]}
    )
    message = SimpleNamespace(topic=topics.INGEST_FHIR, partition=0, offset=6, key=b"p1", value=payload.encode())
    publisher = Capture()
    asyncio.run(interop_batch([SimpleNamespace(message=message)], publisher, decode=fhir_entries))  # type: ignore[list-item]
    codes = [json.loads(v)["code"] for t, _, v in publisher.sent if t == topics.EVENTS_RAW]
    assert codes == ["HR", "discharge"]
