"""The dashboard on the real broker and Redis: a deteriorating patient's alert arrives over SSE, a
clinician acknowledges it over HTTP, the ack reaches vigil.alerts.acks and the `acknowledged` transition
comes back on vigil.alerts. Also: FHIR over HTTP into the pipeline, `vigil alerts tail/ack`, and the
kafka-python example of docs/integration.md."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2
import pytest
import typer
from typer.testing import CliRunner

from tests.conftest import unique_patient, wait_for
from vigil.schemas import topics
from vigil.schemas.alerts import AlertAck
from vigil.schemas.errors import UserError
from vigil.schemas.events import PatientEvent

pytestmark = pytest.mark.integration

PASSWORD = "integration-pass"
API_TOKEN = "integration-token"
DOCS = Path(__file__).parents[2] / "docs" / "integration.md"


def deteriorating(pid: str, ward: str, hours_ago: float = 1.0) -> list[PatientEvent]:
    """One set of vitals scoring NEWS2 >= 7 (RCP 2017: RR 30, SpO2 88, SBP 85, HR 140, T 39.5)."""
    at = datetime.now(UTC) - timedelta(hours=hours_ago)
    codes = {
        "HR": (140, "/min"),
        "Resp": (30, "/min"),
        "SBP": (85, "mm[Hg]"),
        "O2Sat": (88, "%"),
        "Temp": (39.5, "Cel"),
    }
    return [
        PatientEvent(patient_id=pid, observed_at=at, kind="vital", code=c, value=v, unit=u, source="test", ward=ward)
        for c, (v, u) in codes.items()
    ]


def send(producer, events: list[PatientEvent]) -> None:
    for e in events:
        producer.send(topics.EVENTS_RAW, key=e.patient_id.encode(), value=e.model_dump_json().encode())
    producer.flush()


class TopicTail:
    """Records appended to one topic after construction (kafka-python, no group)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
        parts = [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic))]
        self.consumer.assign(parts)
        for tp, offset in self.consumer.end_offsets(parts).items():
            self.consumer.seek(tp, offset)
        self.values: list[bytes] = []

    def poll(self) -> list[bytes]:
        for records in self.consumer.poll(timeout_ms=300).values():
            self.values.extend(r.value for r in records)
        return self.values

    def close(self) -> None:
        self.consumer.close()


class SseReader:
    """Reads /api/stream in a thread and keeps every (event, data) pair. Like a browser's EventSource it
    reconnects when the server ends the stream; ``connected`` is set once the server has subscribed it
    (its first line, ``retry:``, is written after the subscription)."""

    def __init__(self, client: httpx2.Client, path: str = "/api/stream") -> None:
        self.path = path
        self.events: list[tuple[str, dict]] = []
        self.connects = 0
        self.connected = threading.Event()
        self._client = client
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.connected.wait(30), "the SSE stream must open"

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._client.stream("GET", self.path, timeout=httpx2.Timeout(5, read=None)) as r:
                event = ""
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("retry: "):
                        self.connects += 1
                        self.connected.set()
                    elif line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        self.events.append((event, json.loads(line[6:])))
            self._stop.wait(1.0)

    def transitions(self, label: str) -> list[dict]:
        return [d for e, d in list(self.events) if e == "transition" and d["label"] == label]

    def stop(self) -> None:
        self._stop.set()


@pytest.fixture(scope="module")
def web(stack, stack_settings, shared_worker, tmp_path_factory) -> Iterator[str]:
    from vigil.agents.web.app import create_app
    from vigil.agents.web.auth import add_user, load_users
    from vigil.agents.web.kafka_feed import KafkaWardFeed
    from vigil.agents.web.server import ServerThread
    from vigil.infra.settings import Settings

    users_file = tmp_path_factory.mktemp("web") / "users.json"
    add_user(users_file, "ann", PASSWORD, "clinician")
    add_user(users_file, "vic", PASSWORD, "viewer")
    settings = Settings(
        home=stack_settings.home,  # the embedded stack's endpoints and generated Redis password
        kafka=stack_settings.kafka,
        redis=stack_settings.redis,
        api_token=API_TOKEN,
        users_file=users_file,
    )
    feed = KafkaWardFeed(settings, backfill=2000)
    server = ServerThread(create_app(settings, feed, users=load_users(users_file, env={}))).start()
    assert server.wait_ready(60), httpx2.get(f"{server.url}/readyz").text
    yield server.url
    server.stop()


def signed_in(url: str, user: str = "ann") -> httpx2.Client:
    client = httpx2.Client(base_url=url, timeout=10)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
    r = client.post("/login", data={"username": user, "password": PASSWORD, "csrf": token})
    assert r.status_code == 303, r.text
    return client


def test_alert_over_sse_then_ack_over_http_reaches_kafka_and_comes_back(stack, web, producer) -> None:
    client = signed_in(web)
    sse = SseReader(signed_in(web))
    page = SseReader(signed_in(web), "/api/stream?state=1")  # the ward page's stream: the ward first
    acks = TopicTail(stack.bootstrap, topics.ALERT_ACKS)
    pid = unique_patient("web")
    try:
        send(producer, deteriorating(pid, "WEB-1"))
        assert wait_for(lambda: any(t["severity"] == "high" for t in sse.transitions(pid)), timeout=90), (
            "the alert must reach the browser over SSE"
        )
        assert page.events[0][0] == "state" and {"patients", "recent", "wards", "ward_status"} <= set(page.events[0][1])
        assert "state" not in {e for e, _ in sse.events}  # only for a stream that asks for it
        assert wait_for(lambda: any(t["severity"] == "high" for t in page.transitions(pid)), timeout=30)
        # the vitals may reach the worker in more than one batch: the alert can open at a lower
        # level on the first of them and escalate on the next, one alert either way
        opened = next(t for t in sse.transitions(pid) if t["severity"] == "high")
        assert opened["state"] in ("open", "escalated") and opened["ward"] == "WEB-1"
        assert sse.transitions(pid)[0]["state"] == "open"
        assert {t["alert_id"] for t in sse.transitions(pid)} == {opened["alert_id"]}
        assert "RR 30 +3" in opened["reason"]  # clinical words, not parameter codes
        state = client.get("/api/state").json()
        row = next(p for p in state["patients"] if p["label"] == pid)
        assert row["band"] == "high" and row["alerts"][0]["alert_id"] == opened["alert_id"]
        assert pid not in row["row_id"]

        viewer = signed_in(web, "vic")
        r = viewer.post(
            f"/api/alerts/{opened['alert_id']}/ack",
            json={},
            headers={"X-CSRF-Token": viewer.get("/api/state").json()["csrf"]},
        )
        assert r.status_code == 403

        r = client.post(
            f"/api/alerts/{opened['alert_id']}/ack",
            json={"action": "acknowledge"},
            headers={"X-CSRF-Token": state["csrf"]},
        )
        assert r.status_code == 202, r.text
        assert wait_for(
            lambda: any(AlertAck.model_validate_json(v).alert_id == opened["alert_id"] for v in acks.poll()),
            timeout=30,
        )
        ack = next(
            AlertAck.model_validate_json(v)
            for v in acks.values
            if AlertAck.model_validate_json(v).alert_id == opened["alert_id"]
        )
        assert (ack.patient_id, ack.by, ack.action) == (pid, "ann", "acknowledge")
        assert wait_for(
            lambda: any(t["state"] == "acknowledged" and t["by"] == "ann" for t in sse.transitions(pid)),
            timeout=60,
        ), "the worker's acknowledged transition must come back on vigil.alerts"
    finally:
        sse.stop()
        page.stop()
        acks.close()
    metrics = httpx2.get(f"{web}/metrics").text
    assert re.search(r'vigil_web_feed_messages_total\{topic="vigil.alerts"\} [1-9]', metrics)
    assert 'vigil_web_feed_lag{topic="vigil.scores"}' in metrics
    assert httpx2.get(f"{web}/readyz").json() == {
        "ready": True,
        "broker": True,
        "redis": True,
        "feed_assigned": True,
        "feed_caught_up": True,
    }


def test_fhir_over_http_is_scored_by_the_pipeline(stack, web) -> None:
    client = signed_in(web)
    pid = unique_patient("fhir")
    now = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0).isoformat()
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "9279-1"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "effectiveDateTime": now,
        "valueQuantity": {"value": 31, "system": "http://unitsofmeasure.org", "code": "/min"},
    }
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    assert httpx2.post(f"{web}/fhir/Observation", json=observation).status_code == 401
    r = httpx2.post(f"{web}/fhir/Observation", json=observation, headers=auth)
    assert r.status_code == 201, r.text
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "resource": {
                    **observation,
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "valueQuantity": {"value": 128, "system": "http://unitsofmeasure.org", "code": "/min"},
                }
            },
            {"resource": {"resourceType": "Observation", "status": "final"}},
        ],
    }
    r = httpx2.post(f"{web}/fhir", json=bundle, headers=auth)
    assert r.status_code == 200 and any(i["severity"] == "error" for i in r.json()["issue"]), r.text

    def scored() -> dict | None:
        return next((p for p in client.get("/api/state").json()["patients"] if p["label"] == pid), None)

    assert wait_for(lambda: (row := scored()) is not None and row["vitals"].get("HR") == 128, timeout=90)
    assert scored()["vitals"]["Resp"] == 31


@pytest.fixture
def stack_environment(stack_settings, monkeypatch):
    """The in-process CLI connects like a child process of the stack: its home (where the Redis
    password is), ports and protocol (infra.workers.worker_env), with the settings cache reset."""
    from vigil.infra.settings import get_settings
    from vigil.infra.workers import worker_env

    for name, value in worker_env(stack_settings).items():
        if name.startswith("VIGIL_"):
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_alerts_tail_and_ack_commands(stack, shared_worker, producer, stack_environment) -> None:
    from vigil.cli import alerts as cli_alerts

    app = typer.Typer()
    cli_alerts.register(app)
    runner = CliRunner()
    pid = unique_patient("cli")
    send(producer, deteriorating(pid, "CLI-1"))
    seen: list[dict] = []

    def tail_has_mine() -> bool:
        r = runner.invoke(
            app,
            [
                "alerts",
                "tail",
                "--from-beginning",
                "--ward",
                "CLI-1",
                "--min-band",
                "medium",
                "--duration",
                "3",
                "--json",
                "--bootstrap",
                stack.bootstrap,
            ],
        )
        assert r.exit_code == 0, r.output
        lines = [json.loads(line) for line in r.output.strip().splitlines()]
        assert lines[-1]["summary"] is True
        # the patient by its keyed hash, never by id or visit number (a terminal's lines are piped on)
        seen[:] = [x for x in lines[:-1] if x["patient_label"] == patient_label(pid)]
        return bool(seen)

    from vigil.cli.alert_feed import patient_label

    assert wait_for(tail_has_mine, timeout=90, interval=1)
    assert seen[0]["ward"] == "CLI-1" and "patient_id" not in seen[0] and "encounter" not in seen[0]
    r = runner.invoke(
        app,
        [
            "alerts",
            "tail",
            "--from-beginning",
            "--explain",
            "--limit",
            "1",
            "--ward",
            "CLI-1",
            "--bootstrap",
            stack.bootstrap,
        ],
    )
    assert r.exit_code == 0 and "NEWS2" in r.output and pid not in r.output

    # `alerts ls` reads the active alerts from Redis, with the ids the dashboard shows
    def listed() -> list[dict]:
        r = runner.invoke(app, ["alerts", "ls", "--json", "--redis", stack.redis_url])
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout.strip().splitlines()[-1])["alerts"]

    alert_id = seen[0]["alert_id"]
    assert wait_for(lambda: any(a["alert_id"] == alert_id for a in listed()), timeout=30)
    mine = next(a for a in listed() if a["alert_id"] == alert_id)
    assert mine["short_id"] == alert_id[:8] == seen[0]["short_id"] and mine["ward"] == "CLI-1"

    acks = TopicTail(stack.bootstrap, topics.ALERT_ACKS)
    r = runner.invoke(
        app,
        [
            "alerts",
            "ack",
            seen[0]["alert_id"],
            "--patient",
            pid,
            "--by",
            "dr.cli",
            "--resolve",
            "--json",
            "--bootstrap",
            stack.bootstrap,
            "--redis",
            stack.redis_url,
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout.strip().splitlines()[-1])["action"] == "resolve"
    assert wait_for(lambda: any(b"dr.cli" in v for v in acks.poll()), timeout=20)
    acks.close()
    # once resolved it is no longer active: acknowledging it (or an unknown id) fails with one clear line
    assert wait_for(lambda: all(a["alert_id"] != alert_id for a in listed()), timeout=30)
    for unknown in (alert_id[:8], "ffffffffffff"):
        args = ["alerts", "ack", unknown, "--by", "dr.cli", "--bootstrap", stack.bootstrap, "--redis", stack.redis_url]
        r = runner.invoke(app, args)
        assert isinstance(r.exception, UserError) and "no active alert" in str(r.exception)


def test_docs_example_consumer_runs(stack, shared_worker, producer) -> None:
    """The kafka-python consumer in docs/integration.md, run as written (bootstrap and stop injected)."""
    text = DOCS.read_text()
    code = re.search(r"<!-- example-consumer -->\s*```python\n(.*?)```", text, re.S).group(1)
    pid = unique_patient("doc")
    send(producer, deteriorating(pid, "DOC-1"))
    printed: list[str] = []
    namespace = {"__name__": "docs_example", "print": lambda *a, **k: printed.append(" ".join(map(str, a)))}
    code = code.replace('"localhost:9092"', repr(stack.bootstrap) + ", consumer_timeout_ms=60000")
    assert '"vigil-subscriber-pager"' in code  # the group prefix the subscriber role may use
    code = code.replace('"vigil-subscriber-pager"', repr(unique_patient("vigil-subscriber-docs")))
    # stop once our patient's alert printed (the example itself follows forever)
    printing = '    print(alert["at"], alert["ward"], alert["severity"], alert["state"], alert["reason"])'
    assert printing in code
    code = code.replace(printing, printing + "\n    if done():\n        break")
    namespace["done"] = lambda: any("DOC-1" in line for line in printed)
    exec(compile(code, "docs/integration.md", "exec"), namespace)
    namespace["consumer"].close()
    assert any("DOC-1" in line and "open" in line for line in printed), printed[-5:]
