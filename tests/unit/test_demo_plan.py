"""The demo's plan: which stays a discharge ends, and that it follows the stay's last event; the one
discharge entered in error, and its cancel."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from rich.console import Console
from rich.table import Table

from vigil.cli.demo import DISCHARGE_BEFORE_H, discharged, live_progress, plan_demo
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
    ends = [i for i, v in enumerate(values) if v["code"] == "discharge" and not v["patient_id"].startswith("long-")]
    (end,) = ends
    short = [i for i, v in enumerate(values) if v["patient_id"].startswith("short-")]
    assert end == max(short) and values[end]["kind"] == "encounter"
    assert values[end]["event_id"] in plan.event_ids  # the readback counts it (vigil.stays)
    # of the two that may leave, one does: calm patients stay on the ward beside the septic one
    assert all(v["patient_id"].startswith(("short-", "long-")) for v in values if v["code"] == "discharge")


def test_every_second_stay_that_leaves_is_moved_out_of_the_unit_the_others_go_home() -> None:
    calm = [stay(f"calm{i}", 12, False) for i in range(8)]
    plan = plan_demo([stay("long", 40, True), *calm], bad=0)
    ends = {json.loads(v)["patient_id"].split("-")[0]: json.loads(v)["code"] for _, _, v in plan.messages}
    ends = {p: c for p, c in ends.items() if c in ("discharge", "transfer_out")}  # each stay's last event
    assert ends == {"calm0": "discharge", "calm2": "transfer_out", "calm4": "discharge", "calm6": "transfer_out"}


def test_one_septic_stay_is_discharged_in_error_and_the_discharge_cancelled_two_hours_later() -> None:
    plan = plan_demo([stay("long", 40, True), stay("short", 12, False), stay("tall", 12, False)], bad=0)
    values = [json.loads(v) for _, _, v in plan.messages if json.loads(v)["patient_id"].startswith("long-")]
    codes = [v["code"] for v in values]
    leave, cancel = codes.index("discharge"), codes.index("cancel_discharge")
    assert codes.count("discharge") == codes.count("cancel_discharge") == 1
    times = [v["observed_at"] for v in values]
    assert times[leave][14:19] == "45:00" and times[cancel][14:19] == "45:00"  # after the hour's vitals
    # the monitors send on between the two: those events are after the end, so a next stay's
    between = values[leave + 1 : cancel]
    assert between and all(v["kind"] == "vital" and v["observed_at"] > times[leave] for v in between)
    assert all(v["observed_at"] < times[cancel] for v in between)
    assert {values[leave]["event_id"], values[cancel]["event_id"]} <= plan.event_ids


@pytest.mark.parametrize("terminal", [False, True])
def test_the_progress_table_ends_on_a_line_of_its_own(terminal: bool) -> None:
    """Off a terminal (`make demo | tee`, a CI log) the summary that follows began on the table's bottom
    border (rich 15 ends a Live there without a newline)."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=60, color_system=None)
    table = Table("sent")
    table.add_row("3/3")
    with live_progress(console, table, transient=False) as live:
        live.update(table)
    console.print("summary")
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())  # a terminal's cursor moves
    lines = [line.strip() for line in shown.replace("\r", "\n").split("\n")]
    assert "summary" in lines, out.getvalue()


def test_a_transient_progress_table_leaves_nothing_off_a_terminal() -> None:
    out = io.StringIO()
    with live_progress(Console(file=out, force_terminal=False, width=60), Table("sent"), transient=True):
        pass
    assert out.getvalue() == ""


def test_a_stopped_progress_table_ends_its_line_too() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=60)
    with pytest.raises(KeyboardInterrupt), live_progress(console, Table("sent"), transient=False):
        raise KeyboardInterrupt
    assert out.getvalue().endswith("\n")
