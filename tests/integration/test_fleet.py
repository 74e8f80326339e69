"""The live fleet through the real Redis and real workers: each worker announces what it serves
(``vigil:worker:*``, expiring), `vigil workers` lists them, a second worker alerting at another
threshold makes the group mixed (both workers log ``fleet.mixed``; the CLI says so), and a worker
that stops leaves the fleet at once, not when its card expires."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fleet_cards import card

from tests.conftest import wait_for
from tests.integration.test_bundle_change import worker_logs
from vigil.infra import fleet
from vigil.infra.connect import redis_async_client, redis_client
from vigil.infra.workers import stop_worker, worker_env

pytestmark = pytest.mark.integration
VIGIL = str(Path(sys.executable).with_name("vigil"))


def test_a_card_lives_until_it_expires_or_its_worker_leaves(stack, stack_settings) -> None:
    client = redis_client(stack_settings)

    async def scenario() -> None:
        aclient = redis_async_client(stack_settings)
        try:
            await fleet.announce(aclient, card("it-expires"), ttl_s=1)
            await fleet.announce(aclient, card("it-leaves"), ttl_s=60)
            live = {c.worker for c in await fleet.read_fleet_async(aclient)}
            assert {"it-expires", "it-leaves"} <= live
            await fleet.leave(aclient, "it-leaves")
        finally:
            await aclient.aclose()

    asyncio.run(scenario())
    assert "it-leaves" not in {c.worker for c in fleet.read_fleet(client)}
    assert wait_for(lambda: "it-expires" not in {c.worker for c in fleet.read_fleet(client)}, timeout=5)


def workers_json(stack_settings, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    proc = subprocess.run(
        [VIGIL, "workers", "--json", *args], env=worker_env(stack_settings), capture_output=True, text=True, timeout=60
    )
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


def test_workers_serving_two_thresholds_are_a_mixed_group(
    stack, stack_settings, stack_home, shared_worker, spawn
) -> None:
    app_id = stack_settings.app_id

    def ours(summary: dict) -> list[dict]:  # type: ignore[type-arg]
        return [w for w in summary["workers"] if w["app_id"] == app_id and w["scoring"]]

    assert wait_for(lambda: len(ours(workers_json(stack_settings)[1])) == 1, timeout=60), (
        "the shared worker announces itself"
    )
    rc, summary = workers_json(stack_settings)
    (shared,) = ours(summary)
    assert rc == 0 and shared["bundle_version"] and shared["threshold_rule"] == "shipped"
    assert summary["mixed_groups"] == []

    def shared_says(event: str) -> int:
        lines = (stack_home / "logs" / "shared-worker.log").read_text().splitlines()
        return sum(json.loads(ln).get("event") == event for ln in lines if ln.startswith("{"))

    mixed_before = shared_says("fleet.mixed")  # an earlier test's mix may have left its line
    other = spawn("fleet-site", {"VIGIL_SITE__SEPSIS_PREVALENCE": "0.15"})  # another threshold, same bundle
    assert wait_for(lambda: workers_json(stack_settings)[1]["mixed_groups"] == [app_id], timeout=90)
    rc, summary = workers_json(stack_settings, "--expect-bundle", shared["bundle_version"])
    # the same bundle version at another threshold (a worker without the site's settings): the rollout
    # is not done, whatever the version says
    assert rc == 1 and summary["as_expected"] is False
    assert sorted(w["threshold_rule"] for w in ours(summary)) == ["shipped", "site_prevalence"]
    assert workers_json(stack_settings, "--expect-bundle", "9.9.9")[0] == 1
    assert wait_for(lambda: any(e["event"] == "fleet.mixed" for e in worker_logs(stack_home, "fleet-site")), timeout=30)

    assert wait_for(lambda: shared_says("fleet.mixed") > mixed_before, timeout=30)  # this test's mix, seen
    uniform_before = shared_says("fleet.uniform")
    stop_worker(other, timeout_s=10)
    t0 = time.monotonic()
    assert wait_for(lambda: workers_json(stack_settings)[1]["mixed_groups"] == [], timeout=fleet.TTL_S)
    assert time.monotonic() - t0 < fleet.TTL_S / 2  # it left; it did not merely expire
    assert wait_for(lambda: shared_says("fleet.uniform") > uniform_before, timeout=30)
