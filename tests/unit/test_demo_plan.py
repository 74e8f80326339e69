"""The demo's plan: which stays a discharge ends, and that it follows the stay's last event; the one
discharge entered in error, and its cancel."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from rich.console import Console
from rich.table import Table

from vigil.agents.web.views import STALE_AFTER
from vigil.cli.demo import discharged, live_progress, plan_demo
from vigil.infra.replay import Stay
from vigil.schemas.codes import DYNAMIC_CODES


def stay(pid: str, hours: int, septic: bool) -> Stay:
    matrix = np.full((hours, len(DYNAMIC_CODES)), np.nan, dtype=np.float32)
    matrix[:, 0] = 80.0  # HR every hour
    labels = np.zeros(hours)
    labels[-1] = float(septic)
    return Stay(pid, matrix, {"Age": 60.0}, labels)


def test_a_stay_that_never_became_septic_may_be_discharged() -> None:
    assert discharged(stay("a", 34, False)) and discharged(stay("b", 300, False))
    assert not discharged(stay("c", 10, True))  # septic stays stay on view


def times_of(plan) -> dict[str, list[tuple[str, datetime]]]:  # type: ignore[no-untyped-def]
    """Each stay's (code, time) in the order the plan sends them."""
    out: dict[str, list[tuple[str, datetime]]] = {}
    for _, key, value in plan.messages:
        v = json.loads(value)
        out.setdefault(key.decode().split("-")[0], []).append((v["code"], datetime.fromisoformat(v["observed_at"])))
    return out


def test_every_stay_ends_now_and_the_ward_is_sent_in_time_order() -> None:
    """Every stay began with the longest (330 h in make demo's 40): the others ended days before the
    replay did, and 29 of its 30 cards on view read stale (nothing observed for 2 h), their alerts
    'Latest (…)' instead of 'Now'."""
    stays = [stay("long", 330, True), stay("mid", 40, True), stay("short", 12, False), stay("tall", 9, False)]
    before = datetime.now(UTC)
    plan = plan_demo(stays, bad=0)
    now = before.replace(minute=0, second=0, microsecond=0)  # the plan's hours are the wall clock's
    times = times_of(plan)
    for name in ("mid", "tall", "long"):  # on view at the end: observed half an hour before the hour
        observed = [at for code, at in times[name] if code == "HR"]
        assert observed[-1] == now - timedelta(minutes=30), name
        assert datetime.now(UTC) - observed[-1] < STALE_AFTER, name  # not stale once sent
    assert times["short"][-1] == ("discharge", now)  # half an hour after its last row, not in the future
    sent = [at for rows in times.values() for _, at in rows]
    assert all(at <= datetime.now(UTC) for at in sent)
    in_order = [datetime.fromisoformat(json.loads(v)["observed_at"]) for _, _, v in plan.messages]
    assert in_order == sorted(in_order)
    # the replay's hours (its pace): the longest stay's first hour is 0, every stay's last the same
    hours = [hour for hour, _, _ in plan.messages]
    assert hours == sorted(hours) and hours[0] == 0 and hours[-1] == 330
    last_rows = {key: hour for hour, key, value in plan.messages if json.loads(value)["code"] == "HR"}
    assert set(last_rows.values()) == {329}


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


def test_the_stays_that_leave_do_so_hours_apart_while_the_ward_watches() -> None:
    """Ended all at once, every discharge and transfer came in the replay's last instant (10 of 15,111
    messages), after a short --duration none at all."""
    from vigil.cli.demo import LEAVE_EVERY_H

    stays = [stay("long", 60, True)] + [stay(f"calm{i}", 20, False) for i in range(6)]
    before = datetime.now(UTC)
    plan = plan_demo(stays, bad=0)
    now = before.replace(minute=0, second=0, microsecond=0)
    times = times_of(plan)
    left = sorted(rows[-1][1] for rows in times.values() if rows[-1][0] in ("discharge", "transfer_out"))
    assert len(left) == 3
    assert left == [now - timedelta(hours=LEAVE_EVERY_H * k) for k in (2, 1, 0)]
    hours = [hour for hour, _, _ in plan.messages]
    assert hours == sorted(hours) and hours[0] == 0
