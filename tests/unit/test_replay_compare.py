"""`vigil replay`'s comparison with `vigil predict` (pure): closed hours through their final score,
the open last hour through its newest provisional score, silent hours skipped, and every hour that
had events but no score counted and named."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.cli.streamcheck import compare_with_offline

OFFLINE = {"p001": np.array([0.1, 0.2, 0.3, 0.4, 0.5])}


def test_finals_for_closed_hours_and_the_newest_provisional_for_the_open_one() -> None:
    finals = {("r-p001", 0): 0.1, ("r-p001", 1): 0.2000004, ("r-p001", 3): 0.4}
    scores = {("r-p001", 1): [0.9], ("r-p001", 4): [0.7, 0.5000002]}  # provisional: the newest counts
    got = compare_with_offline({"r-p001": "p001"}, {"r-p001": {0, 1, 3, 4}}, OFFLINE, finals, scores)
    assert got["hours_offline"] == 5 and got["hours_without_events"] == 1  # hour 2: nothing measured
    assert got["hours_compared"] == 4 and got["hours_final"] == 3
    assert got["hours_without_stream_score"] == 0 and got["unscored_hours"] == []
    assert got["closed_hours_without_final"] == 0
    assert got["max_abs_diff"] == pytest.approx(4e-7, abs=1e-9)


def test_an_hour_without_any_score_is_named() -> None:
    finals = {("r-p001", 0): 0.1, ("r-p001", 1): 0.2}
    scores = {("r-p001", 4): [0.5]}  # hour 3 had events, and neither a final nor a provisional score
    got = compare_with_offline({"r-p001": "p001"}, {"r-p001": {0, 1, 3, 4}}, OFFLINE, finals, scores)
    assert got["hours_without_stream_score"] == 1
    assert got["unscored_hours"] == [["p001", 3]]
    assert got["closed_hours_without_final"] == 1  # hour 3 closed (hour 4 came) without its final
    assert got["hours_compared"] == 3


def test_nothing_compared_is_no_figure_and_the_json_line_is_strict(capsys: pytest.CaptureFixture[str]) -> None:
    """A worker that scored no hour: the differences are no figure (null under --json, never a bare
    NaN that JSON parsers refuse), and the comparison warns of nothing (np.nanmax of an empty slice did)."""
    import json
    import warnings

    from vigil.cli.jsonout import emit_json

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = compare_with_offline({"r-p001": "p001"}, {"r-p001": {0, 1}}, {"p001": np.array([0.1, 0.2])}, {}, {})
    assert got["hours_compared"] == 0 and got["hours_without_stream_score"] == 2
    emit_json(got)
    line = capsys.readouterr().out.strip()
    summary = json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in {line}"))
    assert summary["max_abs_diff"] is None and summary["max_abs_diff_final"] is None
    assert summary["mean_abs_diff"] is None


def test_a_stream_score_that_is_not_a_number_is_never_a_match() -> None:
    """np.nanmax passed over a NaN score (the rest matched: max 0): it is counted, and the worst
    difference is no figure, not zero."""
    finals = {("r-p001", 0): 0.1, ("r-p001", 1): float("nan"), ("r-p001", 3): 0.4}
    scores = {("r-p001", 4): [0.5]}
    got = compare_with_offline({"r-p001": "p001"}, {"r-p001": {0, 1, 3, 4}}, OFFLINE, finals, scores)
    assert got["hours_compared"] == 4 and got["stream_scores_not_finite"] == 1
    assert np.isnan(got["max_abs_diff"]) and np.isnan(got["max_abs_diff_final"])


def test_a_replay_fails_on_an_unscored_hour_a_nan_or_a_difference_and_passes_when_equal() -> None:
    """`vigil replay` exits 1 on any of these (it printed its figures and exited 0 whatever they were)."""
    from vigil.cli.streamcheck import replay_problems

    equal = {
        "hours_compared": 40,
        "hours_without_stream_score": 0,
        "stream_scores_not_finite": 0,
        "max_abs_diff": 3e-8,
        "deterioration_max_abs_diff": 1e-7,
    }
    assert replay_problems(equal) == []
    assert replay_problems({**equal, "hours_without_stream_score": 2}) == ["2 hours without a stream score"]
    assert replay_problems({**equal, "stream_scores_not_finite": 1, "max_abs_diff": float("nan")}) == [
        "1 stream scores not a number"
    ]
    assert replay_problems({**equal, "deterioration_max_abs_diff": 2e-3}) == [
        "deterioration differs from vigil predict by 2.00e-03 (> 1e-05)"
    ]
    assert replay_problems({**equal, "hours_compared": 0}) == ["no hour was compared"]
