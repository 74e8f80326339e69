"""The demo's worker is started again when it leaves its group (exit 75), as compose's restart would."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.infra import workers
from vigil.infra.settings import Settings


class FakeProc:
    def __init__(self, returncode: int | None) -> None:
        self.returncode = returncode

    def poll(self) -> int | None:
        return self.returncode


def test_a_worker_that_left_its_group_is_started_again_and_no_other_exit_is(
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
    started[-1].returncode = next(exits)  # any other exit (a crash, a stop) is the caller's to see
    worker.check()
    assert len(started) == 2 and worker.proc.poll() == 1
