"""Streaming equals offline: a few real stays through Kafka and the full pipeline give the same
combined probability, hour by hour, as `vigil predict` on the same files (final scores of the
closed hours, the newest provisional score of each stay's open last hour), and the same
deterioration score as the bundle offline (the stream scores the attention encoder from whole
windows, offline steps it through the stay)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from vigil.cli.streamcheck import run_replay_check
from vigil.infra.dataset import ensure_dataset
from vigil.infra.settings import Settings, default_home
from vigil.models.offline import read_stay

pytestmark = pytest.mark.integration

# set A beside the checkout when present, else the user's cache, else the 100-stay sample shipped in
# data/ (infra.dataset.resolve_dataset): the test runs on every clone, CI included
DATA = Path(__file__).parents[3] / "shared" / "data" / "physionet2019"


def test_replay_matches_offline_prediction(stack, stack_settings: Settings, tmp_path: Path) -> None:
    pytest.importorskip("vigil.models.stream_step").load_served_bundle()  # the served bundle must load
    source = ensure_dataset(DATA, default_home())
    picked = tmp_path / "stays"
    picked.mkdir()
    long_enough = [f for f in sorted(source.glob("*.psv")) if sum(1 for _ in f.open()) > 40]
    # two whose first row holds no measurement (the replay sends the age and sex there; the stream's
    # hour 0 is the first measurement, vigil predict's too: models.hour_zero), one whose first row does
    empty_first = [f for f in long_enough if np.isnan(read_stay(f).matrix[0]).all()]
    measured_first = [f for f in long_enough if f not in empty_first]
    for f in [*empty_first[:2], *measured_first[:1]]:  # > 100 hours in all, whichever source
        shutil.copy(f, picked / f.name)
    result = run_replay_check(stack_settings, picked, limit=3)
    print(result)
    assert result["patients"] == 3
    assert result["hours_without_events"] >= 2  # at least the two empty first rows: compared with nothing
    assert result["hours_without_stream_score"] == 0 and result["unscored_hours"] == [], result
    assert result["hour_waits_timed_out"] == 0, result  # the worker scored every hour within a minute
    assert result["hours_compared"] == result["hours_offline"] - result["hours_without_events"] > 100
    # every closed hour has its final score, equal to offline; the last hour of each stay stays open
    assert result["closed_hours_without_final"] == 0
    assert result["hours_final"] == result["hours_compared"] - 3
    assert result["max_abs_diff"] < 1e-5
    assert result["deterioration_hours_compared"] == result["hours_compared"]
    assert result["deterioration_max_abs_diff"] < 1e-5


def test_sigterm_stops_the_replays_worker(tmp_path: Path) -> None:
    """`vigil replay` spawns a worker in its own session: stopped by SIGTERM (a CI job cancelled,
    `timeout`), the command stops it too instead of leaving it running (cli/signals.py)."""
    import signal
    import subprocess

    from tests.conftest import wait_for
    from tests.integration.test_demo import VIGIL, own_stack_env, tear_down, workers_of

    home = tmp_path / "home"
    env = own_stack_env(home)
    source = ensure_dataset(DATA, default_home())
    replay = subprocess.Popen(
        [VIGIL, "replay", "--data", str(source), "--limit", "200"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: bool(workers_of(home)), timeout=180), "the replay's worker did not start"
        replay.send_signal(signal.SIGTERM)
        assert replay.wait(timeout=60) == 130  # interrupted, as by Ctrl-C
        assert wait_for(lambda: not workers_of(home), timeout=30), "SIGTERM must stop the replay's worker"
    finally:
        tear_down(replay, home, env)
