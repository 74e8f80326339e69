"""The churn run's reading of the workers' logs, and its arguments (bench/churn.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vigil.bench.churn import main, watchdog_events


def test_watchdog_lines_are_counted_and_nothing_else(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    log.write_text(
        "\n".join(
            [
                json.dumps({"event": "batch.scored", "events": 3}),
                json.dumps({"event": "consumer.stalled", "topic": "vigil.events.raw", "partition": 2}),
                "[^-VigilApp]: a line of Faust's own",
                json.dumps({"event": "worker.leaving"}),
                '{"event": "consumer.stalled", "broken',
            ]
        )
    )
    counts = watchdog_events([log])
    assert counts["consumer.stalled"] == 1 and counts["worker.leaving"] == 1
    assert sum(counts.values()) == 2


@pytest.mark.parametrize("args", [["0"], ["x"], ["3", "-1"]])
def test_bad_arguments_are_one_line(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
