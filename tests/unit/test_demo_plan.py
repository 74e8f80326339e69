"""The demo's plan: which stays a discharge ends, and that it follows the stay's last event; the one
discharge entered in error, and its cancel. Its worker: one that ended stops the demo with its exit
code and log, a stop or a producer error as the replay starts stops it, it inherits no readiness port."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from rich.table import Table

from vigil.agents.web.views import STALE_AFTER
from vigil.cli.demo import discharged, live_progress, plan_demo
from vigil.infra.replay import Stay
from vigil.infra.settings import Settings
from vigil.infra.workers import EXIT_LEFT_GROUP
from vigil.schemas.codes import DYNAMIC_CODES
from vigil.schemas.errors import UserError


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


class DemoWorker:
    """The demo's worker process: ``returncode`` None while it runs."""

    def __init__(self, returncode: int | None) -> None:
        self.returncode, self.stopped = returncode, False

    def poll(self) -> int | None:
        return self.returncode


class Clock:
    """``time`` for the demo's loops: a sleep moves it on at once (its 120 s wait takes no time)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        return self.now

    monotonic = time

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.01)


@pytest.fixture
def demo_stage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SimpleNamespace:
    """``run_demo`` with everything but its own logic replaced: no stack, broker or process. The
    stage records the worker's environment, the workers started and what was stopped."""
    import vigil.cli.demo as demo
    from vigil.infra import workers

    # exits: how each worker started ends (then it runs): the first one's as it starts
    stage = SimpleNamespace(exits=[], producer_error=None, envs=[], workers=[], reader_stopped=False)
    snapshot = SimpleNamespace(
        scores=0,
        alerts=0,
        dead_letters=0,
        dead_letter_reasons={},
        alert_states={},
        alert_records=[],
        stays_ended=0,
        stay_records=[],
        stays_resumed=0,
        first_alert_at=None,
        latencies_ms=[],
        accounted=lambda ids, bad: (0, 0),  # nothing comes: the worker is not there
    )

    def stop_reader() -> None:
        stage.reader_stopped = True

    reader = SimpleNamespace(snapshot=lambda: snapshot, stop=stop_reader)
    reader.start = lambda: reader

    def spawn(settings: Settings, log_path: Path, extra_env: Any = None) -> DemoWorker:
        stage.envs.append(workers.worker_env(settings, extra_env))
        stage.workers.append(DemoWorker(stage.exits.pop(0) if stage.exits else None))
        return stage.workers[-1]

    def stop(worker: DemoWorker) -> int | None:
        worker.stopped = True
        return worker.returncode

    def producer(*args: Any, **kwargs: Any) -> SimpleNamespace:
        if stage.producer_error is not None:
            raise stage.producer_error
        return SimpleNamespace(send=lambda *a, **k: None, flush=lambda: None, close=lambda: None)

    data = SimpleNamespace(kind="set A", path=tmp_path, stays=2)
    monkeypatch.setattr(demo, "resolve_dataset", lambda *args: data)
    monkeypatch.setattr(demo, "stack_up", lambda settings: None)
    monkeypatch.setattr(demo, "refuse_backlog", lambda settings: None)
    monkeypatch.setattr(demo, "pick_stays", lambda path, n: [stay("long", 14, True), stay("calm", 6, False)])
    monkeypatch.setattr(demo, "TopicReader", lambda settings: reader)
    monkeypatch.setattr(demo, "free_port", lambda: 19_999)
    monkeypatch.setattr(demo, "kafka_producer", producer)
    monkeypatch.setattr(demo, "worker_drift", lambda port: ({}, {}))
    monkeypatch.setattr(demo, "time", Clock())
    monkeypatch.setattr(workers, "spawn_worker", spawn)
    monkeypatch.setattr(workers, "stop_worker", stop)
    stage.settings = Settings(home=tmp_path)
    return stage


def run_demo_on(stage: SimpleNamespace) -> dict[str, Any]:
    from vigil.cli.demo import run_demo

    console = Console(file=io.StringIO(), width=100)
    return run_demo(stage.settings, 2, 0.0, None, 2, console, quiet=True)


def test_a_worker_that_died_at_start_stops_the_demo_with_its_exit_code_and_log(demo_stage: SimpleNamespace) -> None:
    """It waited 120 s and reported every event lost, with no line saying why (here: its metrics
    port in use, `vigil worker` exits 2)."""
    demo_stage.exits = [2]
    with pytest.raises(UserError) as stopped:
        run_demo_on(demo_stage)
    log = demo_stage.settings.home / "logs" / "demo-worker.log"
    assert str(stopped.value) == f"the demo's worker exited with code 2: its log {log} says why"
    assert len(demo_stage.workers) == 1 and demo_stage.workers[0].stopped and demo_stage.reader_stopped


def test_a_worker_that_left_its_group_is_started_again_and_the_demo_goes_on(demo_stage: SimpleNamespace) -> None:
    demo_stage.exits = [EXIT_LEFT_GROUP]  # the one started again runs
    summary = run_demo_on(demo_stage)
    assert len(demo_stage.workers) == 2 and summary["worker_restarts"] == 1
    assert demo_stage.workers[1].stopped


@pytest.mark.parametrize("error", [KeyboardInterrupt("SIGTERM"), OSError("no broker")])
def test_a_stop_or_a_producer_error_as_the_replay_starts_stops_the_worker(
    demo_stage: SimpleNamespace, error: BaseException
) -> None:
    """The worker was started before the ``try`` whose ``finally`` stops it, and ran on in its own
    session after a Ctrl-C or a producer that could not connect."""
    demo_stage.producer_error = error
    with pytest.raises(type(error)):
        run_demo_on(demo_stage)
    assert len(demo_stage.workers) == 1 and demo_stage.workers[0].stopped and demo_stage.reader_stopped


def test_the_demos_worker_serves_its_metrics_port_and_no_readiness_port_it_inherited(
    demo_stage: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A VIGIL_HEALTH_PORT set for another worker on this machine stopped the demo's at start."""
    monkeypatch.setenv("VIGIL_HEALTH_PORT", "19101")
    run_demo_on(demo_stage)
    (env,) = demo_stage.envs
    assert env["VIGIL_METRICS_PORT"] == "19999" and "VIGIL_HEALTH_PORT" not in env
