"""Configuration-change audit: a worker start publishes who, where, when and the effective
configuration (secrets masked) to vigil.audit."""

from __future__ import annotations

import getpass
import json
import socket
from datetime import UTC, datetime

import pytest

from tests.conftest import wait_for
from tests.reliability.helpers import report
from vigil.infra.audit import config_change_record
from vigil.infra.settings import Settings
from vigil.schemas import topics

pytestmark = pytest.mark.reliability

SECRET = "audit-test-secret-Zq9"


def test_config_record_masks_secrets() -> None:
    from pydantic import SecretStr

    record = config_change_record(Settings(log_hash_key=SecretStr(SECRET), api_token=SecretStr(SECRET)))
    text = json.dumps(record)
    assert SECRET not in text
    assert record["config"]["log_hash_key"] == "**********"
    assert record["by"] and record["host"] == socket.gethostname()


def test_worker_start_is_audited(stack, stack_settings, spawn, results_dir) -> None:
    from vigil.infra.connect import consumer_from_now

    audit = consumer_from_now(stack_settings, (topics.AUDIT,))
    started = datetime.now(UTC)
    worker = spawn("audit", env={"VIGIL_API_TOKEN": SECRET, "VIGIL_BATCH__STREAM_TAKE": "400"})
    records: list[dict] = []

    def mine() -> list[dict]:
        for batch in audit.poll(500).values():
            records.extend(json.loads(m.value) for m in batch)
        return [x for x in records if x.get("type") == "config_change" and x.get("pid") == worker.pid]

    try:
        assert wait_for(lambda: bool(mine()), timeout=60), "no config_change record for the worker start"
        record = mine()[0]
    finally:
        audit.close()
    raw = json.dumps(record)
    report(
        results_dir,
        "audit",
        {
            "records": len([x for x in records if x.get("pid") == worker.pid]),
            "by": record["by"],
            "host": record["host"],
            "config_sha256": record["config_sha256"],
        },
    )
    assert record["action"] == "worker_start" and record["component"] == "worker"
    assert record["by"] == getpass.getuser() and record["host"] == socket.gethostname()
    assert datetime.fromisoformat(record["at"]) >= started.replace(microsecond=0)
    assert record["config"]["batch"]["stream_take"] == 400  # the effective (changed) configuration
    assert SECRET not in raw and record["config"]["api_token"] == "**********"
