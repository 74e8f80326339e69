"""Bounded FHIR intake (issue 16): per-entry dead letters, an entry cap and a body cap answered
with 413 before anything is published, and retries that republish the same event ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from web_builders import API_TOKEN

from tests.unit.codecs.test_codec_fhir import encounter
from vigil.agents.web.feed import WardFeed
from vigil.infra.settings import Settings, WebSettings
from vigil.schemas import topics
from vigil.schemas.deadletter import DeadLetter
from vigil.schemas.events import PatientEvent

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
NOW = datetime.now(UTC).replace(microsecond=0).isoformat()


def observation(i: int, code: str = "8867-4", components: int = 0) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": f"obs-{i}",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/intake-{i % 3}"},
        "effectiveDateTime": NOW,
        "valueQuantity": {"value": 70 + i % 30, "system": "http://unitsofmeasure.org", "code": "/min"},
    }
    if components:
        resource["component"] = [
            {"code": {"coding": [{"system": "http://loinc.org", "code": f"0000-{n}"}]}, "valueQuantity": {"value": n}}
            for n in range(components)
        ]
    return resource


def bundle(resources: list[dict[str, Any]]) -> bytes:
    return json.dumps(
        {"resourceType": "Bundle", "type": "batch", "entry": [{"resource": r} for r in resources]}
    ).encode()


class FlakyFeed(WardFeed):
    """Publishes the first ``fail_after`` records of a request, then fails (a broker going away)."""

    def __init__(self, settings: Settings, fail_after: int | None = None) -> None:
        super().__init__(settings)
        self.fail_after = fail_after

    def produce_many(self, records: list[tuple[str, bytes, bytes]]) -> None:
        if self.fail_after is not None:
            super().produce_many(records[: self.fail_after])
            raise ConnectionError("broker went away")
        super().produce_many(records)


@pytest.fixture
def small(users):
    from vigil.agents.web.app import create_app

    settings = Settings(api_token=API_TOKEN, web=WebSettings(fhir_max_entries=20, fhir_max_body_bytes=64 * 1024))
    feed = FlakyFeed(settings)
    with TestClient(create_app(settings, feed, users=users, session_secret="s")) as client:
        yield client, feed


def test_each_rejected_entry_is_dead_lettered_with_only_itself(small) -> None:
    client, feed = small
    resources = [observation(i) for i in range(5)] + [observation(i, code="0000-0") for i in range(5, 15)]
    body = bundle(resources)
    r = client.post("/fhir", content=body, headers=AUTH)
    assert r.status_code == 200, r.text
    dead = [DeadLetter.model_validate_json(v) for t, _, v in feed.produced if t == topics.DEADLETTER]
    events = [PatientEvent.model_validate_json(v) for t, _, v in feed.produced if t == topics.EVENTS_RAW]
    assert len(events) == 5 and len(dead) == 10
    for letter, resource in zip(dead, resources[5:], strict=True):
        assert json.loads(letter.original()) == {"resource": resource} and not letter.truncated
        assert letter.reason == "unmapped_code" and letter.source_topic == "http:/fhir"
        assert letter.original_size is not None and letter.original_size < len(body) / 10


def test_values_the_stream_would_refuse_are_refused_in_the_answer(small) -> None:
    """The intake rules (unit, plausible range, clock skew) apply before the answer, as in the FHIR
    agent: a heart rate of 1,000 is not answered 201 and then dead-lettered by the worker."""
    client, feed = small
    implausible = observation(1)
    implausible["valueQuantity"]["value"] = 1000
    r = client.post("/fhir", content=bundle([observation(0), implausible]), headers=AUTH)
    assert r.status_code == 200, r.text  # some mapped, some refused
    (letter,) = [DeadLetter.model_validate_json(v) for t, _, v in feed.produced if t == topics.DEADLETTER]
    assert letter.reason == "out_of_range" and json.loads(letter.original()) == {"resource": implausible}
    assert sum(t == topics.EVENTS_RAW for t, _, _ in feed.produced) == 1


def test_an_observation_with_many_rejected_components_is_one_dead_letter(small) -> None:
    client, feed = small
    body = json.dumps(observation(1, code="0000-0", components=500)).encode()
    r = client.post("/fhir/Observation", content=body, headers=AUTH)
    assert r.status_code == 400
    (letter,) = [DeadLetter.model_validate_json(v) for t, _, v in feed.produced if t == topics.DEADLETTER]
    assert letter.original() == body and "501 rejections" in letter.detail
    issues = r.json()["issue"]
    assert len(issues) <= 102 and "not listed" in issues[-1]["diagnostics"]


def test_too_many_entries_is_413_with_the_limit_and_publishes_nothing(small) -> None:
    client, feed = small
    r = client.post("/fhir", content=bundle([observation(i) for i in range(21)]), headers=AUTH)
    assert r.status_code == 413 and "limit 20" in r.json()["issue"][0]["diagnostics"]
    assert feed.produced == []
    assert client.post("/fhir", content=bundle([observation(i) for i in range(20)]), headers=AUTH).status_code == 201


def test_a_body_over_the_cap_is_413_even_without_a_content_length(small) -> None:
    client, feed = small
    big = bundle([observation(i) for i in range(1)]) + b" " * 70_000

    def chunks():
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    r = client.post("/fhir", content=chunks(), headers=AUTH)  # chunked: no Content-Length
    assert r.status_code == 413 and feed.produced == []
    assert client.post("/fhir", content=big, headers=AUTH).status_code == 413


def test_a_retry_after_a_partial_failure_republishes_the_same_ids(small) -> None:
    """Half a request may be on the topic when the broker fails: the client is told to retry, and
    the retry carries the same event ids, which ingest then counts as duplicates (not scored twice)."""
    client, feed = small
    body = bundle([observation(i) for i in range(6)] + [observation(9, code="0000-0")])
    feed.fail_after = 3
    r = client.post("/fhir", content=body, headers=AUTH)
    assert r.status_code == 503 and "retry" in r.json()["issue"][0]["diagnostics"]
    first = [PatientEvent.model_validate_json(v).event_id for t, _, v in feed.produced if t == topics.EVENTS_RAW]
    feed.fail_after, feed.produced = None, []
    assert client.post("/fhir", content=body, headers=AUTH).status_code == 200
    retry = [PatientEvent.model_validate_json(v).event_id for t, _, v in feed.produced if t == topics.EVENTS_RAW]
    assert len(first) == 3 and len(retry) == 6 and set(first) <= set(retry)
    assert sum(t == topics.DEADLETTER for t, _, _ in feed.produced) == 1


def test_a_bundles_discharge_is_published_after_its_other_entries(small) -> None:
    """A finished Encounter first and the stay's last results after it: the results go out first,
    so they are scored in the stay before the discharge ends it (models.stays)."""
    client, feed = small
    finished = encounter(subject={"reference": "Patient/intake-0"}, period={"end": NOW})
    r = client.post("/fhir", content=bundle([finished, observation(0), observation(3)]), headers=AUTH)
    assert r.status_code == 201, r.text
    events = [PatientEvent.model_validate_json(v) for t, _, v in feed.produced if t == topics.EVENTS_RAW]
    assert [e.code for e in events] == ["HR", "HR", "discharge"]


def test_the_sites_units_reach_the_http_intake_an_encounter_moved_to_a_ward_ends_the_stay(users) -> None:
    """``POST /fhir`` reads the Encounter moves as the FHIR agent does, with the settings' units,
    and publishes the transfer after the Bundle's results, as a discharge."""
    from tests.unit.codecs.test_codec_fhir import MICU_TO_WARD, moved
    from vigil.agents.web.app import create_app
    from vigil.infra.settings import IngestSettings

    update = moved(*MICU_TO_WARD) | {"subject": {"reference": "Patient/intake-0"}}
    for units, codes in [((), ["HR"]), (("MICU",), ["HR", "transfer_out"])]:
        settings = Settings(api_token=API_TOKEN, ingest=IngestSettings(monitored_units=units))
        feed = FlakyFeed(settings)
        with TestClient(create_app(settings, feed, users=users, session_secret="s")) as client:
            r = client.post("/fhir", content=bundle([update, observation(0)]), headers=AUTH)
        assert r.status_code == 201, r.text
        events = [PatientEvent.model_validate_json(v) for t, _, v in feed.produced if t == topics.EVENTS_RAW]
        assert [e.code for e in events] == codes


def test_the_http_intake_places_a_bundles_results_by_its_encounter(users) -> None:
    """``POST /fhir`` of a ward's results (their Encounter in the Bundle names 4WEST) publishes
    nothing and refuses nothing where the site monitors ICU-3: not Vigil's to score, not an error."""
    from tests.unit.codecs.test_fhir_places import FIXTURE
    from vigil.agents.web.app import create_app
    from vigil.infra.settings import IngestSettings

    def counted() -> tuple[float, float]:  # on vigil serve's /metrics, as the FHIR agent counts them
        from prometheus_client import REGISTRY

        return (
            REGISTRY.get_sample_value("vigil_ignored_units_total", {"unit": "4WEST"}) or 0.0,
            REGISTRY.get_sample_value("vigil_interop_ignored_total", {"reason": "context_resource"}) or 0.0,
        )

    before = counted()
    for units, wards in [(("ICU-3",), []), (("4WEST",), ["4WEST", "4WEST"])]:
        settings = Settings(api_token=API_TOKEN, ingest=IngestSettings(monitored_units=units))
        feed = FlakyFeed(settings)
        with TestClient(create_app(settings, feed, users=users, session_secret="s")) as client:
            r = client.post("/fhir", content=FIXTURE.read_bytes(), headers=AUTH)
        assert r.status_code == (200 if not wards else 201), r.text
        said = r.json()["issue"][0]["diagnostics"]
        if not wards:  # nothing wrong, nothing to send again: as the MLLP listener's AA
            assert said.startswith("nothing to map: 7 parts ignored: context_resource x5, unmonitored_unit x2")
            assert "from units Vigil does not monitor: 4WEST x2" in said
        events = [PatientEvent.model_validate_json(v) for t, _, v in feed.produced if t == topics.EVENTS_RAW]
        assert [e.ward for e in events] == wards
        assert [t for t, _, _ in feed.produced if t == topics.DEADLETTER] == []
    units_counted, context_counted = (after - was for after, was in zip(counted(), before, strict=True))
    assert (units_counted, context_counted) == (2, 5 + 5)  # both requests' Patient, Locations and Encounter


def test_the_http_intake_places_results_sent_apart_by_the_encounter_an_earlier_request_sent(users) -> None:
    """As the FHIR agent: an Encounter POSTed alone keeps its units; the Observation POSTed after it
    alone is placed by them (the workers' Redis store in ``vigil serve``; here the feed's own)."""
    from tests.unit.codecs.test_fhir_places import sent_apart
    from vigil.agents.web.app import create_app
    from vigil.infra.settings import IngestSettings

    at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    settings = Settings(api_token=API_TOKEN, ingest=IngestSettings(monitored_units=("ICU-3",)))
    feed = FlakyFeed(settings)
    answers = []
    with TestClient(create_app(settings, feed, users=users, session_secret="s")) as client:
        for sent in (
            *sent_apart("apart-1", at, "4WEST"),
            *sent_apart("apart-1", at + timedelta(hours=1), "4WEST", "ICU-3"),
        ):
            answers.append(client.post("/fhir", content=sent, headers=AUTH).status_code)
    assert answers == [200, 200, 200, 201]  # the Encounters and the ward's result: nothing to map
    events = [PatientEvent.model_validate_json(v) for t, _, v in feed.produced if t == topics.EVENTS_RAW]
    assert [(e.code, e.ward, e.observed_at) for e in events] == [("HR", "ICU-3", at + timedelta(hours=1))]


class AwayBook(FlakyFeed):
    """A feed whose Encounter store is away (Redis down)."""

    def kept_places(self, encounter_ids):  # type: ignore[no-untyped-def]
        from redis.exceptions import ConnectionError as RedisConnectionError

        raise RedisConnectionError("Redis is away")


def test_the_http_intake_answers_503_and_publishes_nothing_while_the_encounter_store_is_away(users) -> None:
    from tests.unit.codecs.test_fhir_places import sent_apart
    from vigil.agents.web.app import create_app
    from vigil.infra.settings import IngestSettings

    settings = Settings(api_token=API_TOKEN, ingest=IngestSettings(monitored_units=("ICU-3",)))
    feed = AwayBook(settings)
    with TestClient(create_app(settings, feed, users=users, session_secret="s")) as client:
        _, heart_rate = sent_apart("apart-2", datetime.now(UTC).replace(microsecond=0), "ICU-3")
        r = client.post("/fhir", content=heart_rate, headers=AUTH)
    assert r.status_code == 503 and "retry the same request later" in r.text
    assert feed.produced == []


def test_going_live_the_encounters_in_progress_sent_first_place_the_results_after_them(users) -> None:
    """docs/interop.md, "Going live with a FHIR feed": a result whose Encounter Vigil never read is
    scored as if from a monitored unit, a ward patient's too, and the answer says so; the server's
    searchset of the Encounters in progress (their Locations included) POSTed once places the results
    that follow: the ICU patient's scored with its unit, the ward patient's ignored."""
    from vigil.agents.web.app import create_app
    from vigil.infra.settings import IngestSettings

    seed = Path(__file__).parents[1] / "codecs" / "fixtures" / "fhir" / "bundle-searchset-encounters-in-progress.json"

    def heart_rate(pid: str, visit: str) -> bytes:
        resource = observation(0) | {"id": f"hr-{pid}", "subject": {"reference": f"Patient/{pid}"}}
        return json.dumps(resource | {"encounter": {"reference": f"Encounter/{visit}"}}).encode()

    results = heart_rate("7730044", "V77300441"), heart_rate("5520193", "V88120317")
    settings = Settings(api_token=API_TOKEN, ingest=IngestSettings(monitored_units=("ICU-3",)))
    feed = FlakyFeed(settings)
    with TestClient(create_app(settings, feed, users=users, session_secret="s")) as client:
        before = [client.post("/fhir", content=r, headers=AUTH) for r in results]
        scored_before = [PatientEvent.model_validate_json(v) for t, _, v in feed.produced if t == topics.EVENTS_RAW]
        feed.produced.clear()
        seeded = client.post("/fhir", content=seed.read_bytes(), headers=AUTH)
        after = [client.post("/fhir", content=r, headers=AUTH) for r in results]
    assert [r.status_code for r in before] == [201, 201]
    assert [(e.patient_id, e.ward) for e in scored_before] == [("7730044", None), ("5520193", None)]
    said = before[1].json()["issue"][0]["diagnostics"]
    assert "scored as if from a monitored unit, their Encounter not read by Vigil: 1 results" in said
    assert seeded.status_code == 200 and seeded.json()["issue"][0]["diagnostics"].startswith("nothing to map")
    assert [r.status_code for r in after] == [201, 200]
    assert "not scored, from units Vigil does not monitor: 4WEST x1" in after[1].json()["issue"][0]["diagnostics"]
    events = [PatientEvent.model_validate_json(v) for t, _, v in feed.produced if t == topics.EVENTS_RAW]
    assert [(e.patient_id, e.ward) for e in events] == [("7730044", "ICU-3")]


def test_the_intakes_dead_letters_are_counted_by_reason_once_stored(small) -> None:
    """vigil_dead_letters_total counted the workers' and the MLLP listener's letters, not the
    FHIR intake's: a site whose EHR posts FHIR saw no dead letters rising on its dashboards."""
    from prometheus_client import REGISTRY

    def counted(reason: str) -> float:
        return REGISTRY.get_sample_value("vigil_dead_letters_total", {"reason": reason}) or 0.0

    client, feed = small
    implausible = observation(2)
    implausible["valueQuantity"]["value"] = 1000
    body = bundle([observation(0), observation(1, code="0000-0"), observation(3, code="0000-0"), implausible])
    before = counted("unmapped_code"), counted("out_of_range")
    feed.fail_after = 1  # the broker goes away: nothing is stored as a whole, nothing counted
    assert client.post("/fhir", content=body, headers=AUTH).status_code == 503
    assert (counted("unmapped_code"), counted("out_of_range")) == before
    feed.fail_after = None
    assert client.post("/fhir", content=body, headers=AUTH).status_code == 200
    assert counted("unmapped_code") - before[0] == 2 and counted("out_of_range") - before[1] == 1
    assert counted("unmapped_code") - before[0] == sum(
        DeadLetter.model_validate_json(v).reason == "unmapped_code"
        for t, _, v in feed.produced
        if t == topics.DEADLETTER
    )


def test_past_the_requests_held_at_once_the_intake_answers_503_before_reading(small) -> None:
    """Every request held its body while it waited for one of the two decode slots: 16 at once held
    112 MiB (RAM under compose's tmpfs), more connections more. Past ``INTAKE_HELD`` the answer is
    503 with Retry-After before the body is read, and a request's place is given back when it ends."""
    from vigil.agents.web.intake import INTAKE_HELD

    client, feed = small
    state = client.app.state  # type: ignore[attr-defined]
    state.fhir_held = INTAKE_HELD  # as many requests read or waiting as it holds
    r = client.post("/fhir", content=bundle([observation(1)]), headers=AUTH)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1" and feed.produced == []
    state.fhir_held = INTAKE_HELD - 1
    assert client.post("/fhir", content=bundle([observation(1)]), headers=AUTH).status_code == 201
    assert state.fhir_held == INTAKE_HELD - 1  # its place given back
    assert client.post("/fhir", content=b"x" * 70_000, headers=AUTH).status_code == 413
    assert state.fhir_held == INTAKE_HELD - 1  # also when it ends in a refusal


def test_a_bundle_naming_its_type_after_its_entries_is_413_past_the_limit(small) -> None:
    """The entries are counted up to the limit, before a ``resourceType`` written after them: such a
    Bundle was not refused, and was decoded whole (1,500 entries published past a limit of 1,000)."""
    client, feed = small
    entries = [{"resource": observation(i)} for i in range(21)]
    body = json.dumps({"entry": entries, "type": "batch", "resourceType": "Bundle"}).encode()
    r = client.post("/fhir", content=body, headers=AUTH)
    assert r.status_code == 413 and "limit 20" in r.json()["issue"][0]["diagnostics"]
    assert feed.produced == []


def test_an_integer_past_64_bits_dead_letters_only_its_own_entry(small) -> None:
    """Valid JSON the stream's parser refuses had the Bundle decoded whole: the dead letter of its one
    implausible entry carried the whole Bundle, every other patient's entries with it."""
    client, feed = small
    implausible = observation(7)
    implausible["valueQuantity"]["value"] = 10**30
    r = client.post("/fhir", content=bundle([observation(i) for i in range(5)] + [implausible]), headers=AUTH)
    assert r.status_code == 200, r.text
    (letter,) = [DeadLetter.model_validate_json(v) for t, _, v in feed.produced if t == topics.DEADLETTER]
    assert json.loads(letter.original()) == {"resource": implausible} and b"intake-0" not in letter.original()
    assert sum(t == topics.EVENTS_RAW for t, _, _ in feed.produced) == 5


def test_a_body_not_sent_within_the_deadline_is_408_and_gives_its_place_back(monkeypatch, users) -> None:
    """Eight senders that sent their headers and then nothing held every intake place for as long as
    their connections stayed open (uvicorn sets no deadline on a body): every other integration 503."""
    import asyncio

    from vigil.agents.web import intake
    from vigil.agents.web.app import create_app

    monkeypatch.setattr(intake, "BODY_READ_DEADLINE_S", 0.2, raising=False)
    settings = Settings(api_token=API_TOKEN)
    app = create_app(settings, WardFeed(settings), users=users, session_secret="s")
    headers = [(b"host", b"x"), (b"authorization", AUTH["Authorization"].encode()), (b"transfer-encoding", b"chunked")]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/fhir", "raw_path": b"/fhir", "query_string": b"", "root_path": "", "headers": headers,
        "client": ("10.0.0.9", 5000), "server": ("x", 80), "state": {},
    }  # fmt: skip

    chunks = [b'{"resourceType":"Bundle","entry":[']  # the first bytes of a Bundle, then nothing

    async def trickle() -> dict[str, Any]:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(), "more_body": True}
        await asyncio.Event().wait()
        return {}

    answer: dict[str, Any] = {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"], answer["headers"] = message["status"], dict(message["headers"])
        elif message["type"] == "http.response.body":
            answer["body"] = answer.get("body", b"") + message.get("body", b"")

    asyncio.run(asyncio.wait_for(app(scope, trickle, send), timeout=10))
    assert answer["status"] == 408 and answer["headers"][b"connection"] == b"close"
    assert "send the same request again" in json.loads(answer["body"])["issue"][0]["diagnostics"]
    assert app.state.fhir_held == 0  # its place given back
