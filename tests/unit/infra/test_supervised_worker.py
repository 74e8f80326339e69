"""The demo's worker is started again when it leaves its group (exit 75), as compose's restart would;
any other exit stops the demo with its exit code and log (it waited 120 s and reported every event
lost). A child's environment leaves out what its parent asks (the bench's workers, the parent's ports)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.infra import workers
from vigil.infra.settings import Settings
from vigil.schemas.errors import UserError


class FakeProc:
    def __init__(self, returncode: int | None) -> None:
        self.returncode = returncode

    def poll(self) -> int | None:
        return self.returncode


def test_a_worker_that_left_its_group_is_started_again_and_any_other_exit_stops_the_caller(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    started: list[FakeProc] = []
    exits = iter([workers.EXIT_LEFT_GROUP, None, 1])

    def spawn(settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None) -> FakeProc:
        assert log_path == tmp_path / "w.log" and extra_env == {"X": "1"}  # started as before
        started.append(FakeProc(None))
        return started[-1]

    monkeypatch.setattr(workers, "spawn_worker", spawn)
    worker = workers.SupervisedWorker(Settings(), tmp_path / "w.log", {"X": "1"})
    worker.check()
    assert len(started) == 1 and worker.restarts == 0  # running
    started[-1].returncode = next(exits)
    worker.check()
    assert len(started) == 2 and worker.restarts == 1 and worker.proc is started[1]
    started[-1].returncode = next(exits)
    worker.check()
    assert len(started) == 2
    started[-1].returncode = next(exits)  # any other exit (a crash, a port in use) stops the caller
    with pytest.raises(UserError) as stopped:
        worker.check()
    assert len(started) == 2 and worker.proc.poll() == 1
    assert str(stopped.value) == f"the worker exited with code 1: its log {tmp_path / 'w.log'} says why"


@pytest.mark.parametrize(
    ("returncode", "said"),
    [
        (None, None),
        (2, "the demo's worker exited with code 2: its log /h/w.log says why"),
        (-9, "the demo's worker was ended by signal 9: its log /h/w.log says why"),
        (
            workers.EXIT_LEFT_GROUP,  # a bench worker's: nothing restarts it
            "the demo's worker left its group (exit 75: it had stopped reading) and nothing starts it again: "
            "its log /h/w.log says why",
        ),
    ],
)
def test_how_a_worker_ended_is_one_line_with_its_log(returncode: int | None, said: str | None) -> None:
    assert workers.exit_problem(returncode, Path("/h/w.log"), "the demo's worker") == said


def test_a_name_the_parent_leaves_out_is_not_in_the_childs_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bench's workers inherited the parent's VIGIL_METRICS_PORT: the first bound it, every other
    exited 2. Without a None, a child inherits as before (tests/conftest.py, cli/streamcheck.py)."""
    monkeypatch.setenv("VIGIL_METRICS_PORT", "19100")
    monkeypatch.setenv("VIGIL_HEALTH_PORT", "19101")
    settings = Settings()
    assert workers.worker_env(settings)["VIGIL_METRICS_PORT"] == "19100"
    env = workers.worker_env(settings, {"VIGIL_METRICS_PORT": None, "VIGIL_APP_ID": "vigil-bench"})
    assert "VIGIL_METRICS_PORT" not in env and env["VIGIL_HEALTH_PORT"] == "19101"
    assert env["VIGIL_APP_ID"] == "vigil-bench"
