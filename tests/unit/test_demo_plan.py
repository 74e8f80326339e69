"""The demo's plan: which stays a discharge ends, and that it follows the stay's last event."""

from __future__ import annotations

import json

import numpy as np

from vigil.cli.demo import DISCHARGE_BEFORE_H, discharged, plan_demo
from vigil.infra.replay import Stay
from vigil.schemas.codes import DYNAMIC_CODES


def stay(pid: str, hours: int, septic: bool) -> Stay:
    matrix = np.full((hours, len(DYNAMIC_CODES)), np.nan, dtype=np.float32)
    matrix[:, 0] = 80.0  # HR every hour
    labels = np.zeros(hours)
    labels[-1] = float(septic)
    return Stay(pid, matrix, {"Age": 60.0}, labels)


def test_a_short_stay_that_never_became_septic_is_discharged() -> None:
    longest = 40
    assert discharged(stay("a", longest - DISCHARGE_BEFORE_H, False), longest)
    assert not discharged(stay("b", longest - DISCHARGE_BEFORE_H + 1, False), longest)  # ends near now
    assert not discharged(stay("c", 10, True), longest)  # septic stays stay on view


def test_the_discharge_is_the_stays_last_message_and_is_accounted() -> None:
    plan = plan_demo([stay("long", 40, True), stay("short", 12, False), stay("tall", 12, False)], bad=0)
    values = [json.loads(v) for _, _, v in plan.messages]
    ends = [i for i, v in enumerate(values) if v["code"] == "discharge"]
    (end,) = ends
    short = [i for i, v in enumerate(values) if v["patient_id"].startswith("short-")]
    assert end == max(short) and values[end]["kind"] == "encounter"
    assert values[end]["event_id"] in plan.event_ids  # the readback counts it (vigil.stays)
    # of the two that may leave, one does: calm patients stay on the ward beside the septic one
    assert all(v["patient_id"].startswith("short-") for v in values if v["code"] == "discharge")
