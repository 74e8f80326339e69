"""Every client against the secure stack (SASL_SSL + SCRAM-SHA-512 + local CA, Redis ACL user with
password): the worker, the dashboard feed, `vigil alerts tail` and `vigil alerts ack`, `vigil demo`,
`vigil bench --quick` and `vigil replay`. Each gets its endpoints and credentials from
``infra.connect``; the CLI commands run as real processes whose only link to the stack is the
environment `infra.workers.worker_env` gives them (home, ports, protocol; no password)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import unique_patient, wait_for
from tests.integration.test_web import deteriorating, send
from vigil.infra.dataset import ensure_dataset
from vigil.infra.settings import default_home
from vigil.schemas import topics

pytestmark = pytest.mark.integration

DATA = Path(__file__).parents[3] / "shared" / "data" / "physionet2019"


def vigil(settings, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> dict:
    """Run `vigil ARGS --json` as a process connected like ``settings``; its JSON summary."""
    from vigil.infra.workers import worker_env

    proc = subprocess.run(
        [sys.executable, "-m", "vigil.cli", *args, "--json"],
        env=worker_env(settings, {"VIGIL_LOG_FORMAT": "console", **(env or {})}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"vigil {' '.join(args)}: {proc.stderr[-3000:]}{proc.stdout[-2000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def data_env() -> dict[str, str]:
    """Set A beside the checkout or in the user cache when there is one (no second unpacking per home),
    else the sample shipped in data/: these checks run on every clone."""
    return {"VIGIL_DATA_DIR": str(ensure_dataset(DATA, default_home()))}


@pytest.fixture
def secure_worker(secure_settings, secure_stack, tmp_path):
    """The test's own worker, stopped when the test ends: the demo, bench and replay below start
    their own workers in the same consumer group and count on being its only members (this worker,
    module-scoped then, was still in the group when a replay check found an unscored hour)."""
    from vigil.infra.workers import spawn_worker, stop_worker

    log = tmp_path / "worker.log"
    proc = spawn_worker(secure_settings, log)
    yield proc
    stop_worker(proc, timeout_s=10)
    secrets = [p.read_text().strip() for p in (secure_settings.home / "secrets").iterdir()]
    assert not any(s in log.read_text() for s in secrets), "the worker logged a secret"


def test_worker_feed_and_terminal_commands_over_sasl_ssl(secure_settings, secure_worker) -> None:
    from vigil.agents.web.kafka_feed import KafkaWardFeed
    from vigil.infra.connect import consumer_from_now, kafka_producer
    from vigil.infra.readback import TopicReader

    reader = TopicReader(secure_settings).start()
    acks = consumer_from_now(secure_settings, (topics.ALERT_ACKS,))
    feed = KafkaWardFeed(secure_settings, backfill=100)
    feed.start(asyncio.new_event_loop())  # fan-out is queued on a loop nobody runs: the model is what we read
    producer = kafka_producer(secure_settings)
    pid = unique_patient("sec")
    try:
        # the worker scores and alerts; the feed, a consumer and Redis client of its own, sees both
        send(producer, deteriorating(pid, "SEC-1"))
        assert wait_for(lambda: any(a["patient_id"] == pid for a in reader.snapshot().alert_records), timeout=120)
        assert wait_for(lambda: all(feed.readiness().values()), 60)
        assert wait_for(lambda: any(r["label"] == pid and r["alerts"] for r in feed.model.snapshot()["patients"]), 60)
        # the feed's producer (acknowledgements and FHIR intake use it) gets through too
        later = deteriorating(pid, "SEC-1", hours_ago=0.5)
        feed.produce_many([(topics.EVENTS_RAW, pid.encode(), e.model_dump_json().encode()) for e in later])
        assert wait_for(lambda: {e.event_id for e in later} <= reader.snapshot().scored_ids, timeout=60)

        tail = vigil(secure_settings, "alerts", "tail", "--from-beginning", "--ward", "SEC-1", "--duration", "8")
        assert tail["summary"] and tail["transitions"] >= 1, tail
        alert = next(a for a in reader.snapshot().alert_records if a["patient_id"] == pid)
        ack = vigil(secure_settings, "alerts", "ack", alert["alert_id"], "--patient", pid, "--by", "dr.sec")
        assert ack["topic"] == topics.ALERT_ACKS

        def acked() -> bool:
            return any(b"dr.sec" in r.value for batch in acks.poll(timeout_ms=300).values() for r in batch)

        assert wait_for(acked, timeout=30), "the acknowledgement must reach vigil.alerts.acks"
        assert wait_for(
            lambda: any(
                a["patient_id"] == pid and a["state"] == "acknowledged" for a in reader.snapshot().alert_records
            ),
            timeout=60,
        ), "the worker consumed the acknowledgement"
    finally:
        producer.close()
        feed.stop()
        acks.close()
        reader.stop()


def test_demo_bench_and_replay_over_sasl_ssl(secure_settings, secure_stack, tmp_path) -> None:
    demo = vigil(secure_settings, "demo", "--patients", "2", "--speed", "0", "--bad", "2", "--no-serve", env=data_env())
    assert demo["lost"] == 0 and demo["scores"] > 0 and demo["dead_letters"] >= 2, demo

    bench = vigil(
        secure_settings,
        *("bench", "--quick", "--events", "300", "--rate", "100", "--latency-s", "2", "--patients", "4"),
        *("--workers", "2,", "--partitions", "6", "--out", str(tmp_path / "bench.json")),
        env=data_env(),
    )
    assert bench["baseline"]["complete"] and bench["pipeline"]["complete"], bench
    latency = bench["latency"]  # every offered event scored, or dead-lettered with its reason
    assert latency["unaccounted"] == 0 and set(latency["dead_lettered"]) <= {"duplicate", "out_of_range"}, latency
    assert latency["scored"] + sum(latency["dead_lettered"].values()) == latency["events"], latency
    assert bench["redis_bytes_per_patient"] > 0
    # two workers of each kind shared the (grown) partitions before the load, over SASL_SSL
    assert [p["workers"] for p in bench["workers_curve"]] == [2] and bench["partitions"] >= 6, bench
    (point,) = bench["workers_detail"]
    for kind in ("pipeline", "baseline"):
        assert point[kind]["complete"] and point[kind]["group_split_before_load"], point
        assert point[kind]["events_per_s"] > 0 and point[kind]["usage"]["machine_busy_share"] is not None
    assert point["pipeline"]["usage"]["redis_commands_per_event"] > 0  # the admin user reads INFO
    scaled = bench["latency_with_workers"]  # the latency phase again, against both workers
    assert scaled["workers"] == 2 and scaled["group_split_before_load"] and scaled["scored"] == scaled["events"]

    stays = tmp_path / "stays"
    stays.mkdir()
    first = sorted(ensure_dataset(DATA, default_home()).glob("*.psv"))[0]
    shutil.copy(first, stays / first.name)
    replay = vigil(secure_settings, "replay", "--data", str(stays), "--limit", "1")
    assert replay["patients"] == 1 and replay["hours_without_stream_score"] == 0 and replay["hours_compared"] > 0, (
        replay
    )
    assert replay["max_abs_diff"] < 1e-5, replay
