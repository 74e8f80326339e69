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


def test_the_streams_hour_0_is_the_files_first_measured_row() -> None:
    # the file's row 0 held the age and sex alone (events, no measurement): the stream's hour h is the
    # file's row 1 + h (models.hour_zero), and row 0 is compared with nothing (vigil predict wrote 0.0)
    offline = {"p001": np.array([0.0, 0.2, 0.3, 0.4])}
    finals = {("r-p001", 0): 0.2, ("r-p001", 1): 0.3000001, ("r-p001", 3): 0.9}  # hour 3: no such row
    scores = {("r-p001", 0): [0.05], ("r-p001", 2): [0.4]}  # hour 0: a provisional score its final replaces
    got = compare_with_offline({"r-p001": "p001"}, {"r-p001": {0, 1, 2, 3}}, offline, finals, scores, {"r-p001": 1})
    assert got["hours_without_events"] == 1 and got["hours_compared"] == 3 and got["hours_final"] == 2
    assert got["max_abs_diff"] == pytest.approx(1e-7, abs=1e-9) and got["hours_without_stream_score"] == 0
    unshifted = compare_with_offline({"r-p001": "p001"}, {"r-p001": {0, 1, 2, 3}}, offline, finals, scores)
    assert unshifted["max_abs_diff"] > 0.1  # read as the file's rows, the hours disagree


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
    """`vigil replay` exits 1 on any of these, of either score (it printed its figures and exited 0
    whatever they were; then a NaN or unscored deterioration hour still passed)."""
    from vigil.cli.streamcheck import replay_problems

    equal = {
        f"{prefix}{key}": value
        for prefix in ("", "deterioration_")
        for key, value in (
            ("hours_compared", 40),
            ("hours_without_stream_score", 0),
            ("stream_scores_not_finite", 0),
            ("max_abs_diff", 3e-8),
        )
    }
    assert replay_problems(equal) == []
    assert replay_problems({**equal, "hours_without_stream_score": 2}) == ["2 hours without a combined stream score"]
    assert replay_problems({**equal, "stream_scores_not_finite": 1, "max_abs_diff": float("nan")}) == [
        "1 combined stream scores not a number"
    ]
    assert replay_problems({**equal, "deterioration_max_abs_diff": 2e-3}) == [
        "deterioration differs from vigil predict by 2.00e-03 (> 1e-05)"
    ]
    nan = {**equal, "deterioration_stream_scores_not_finite": 2, "deterioration_max_abs_diff": float("nan")}
    assert replay_problems(nan) == ["2 deterioration stream scores not a number"]
    unscored = {**equal, "deterioration_hours_compared": 0, "deterioration_hours_without_stream_score": 2}
    assert replay_problems(unscored) == [
        "no deterioration hour was compared",
        "2 hours without a deterioration stream score",
    ]
    assert replay_problems({**equal, "hours_compared": 0}) == ["no combined hour was compared"]


def test_a_replay_its_timeout_cut_off_fails_and_says_what_to_do() -> None:
    """The replay stops sending stays after ``timeout_s``: every hour it did compare was equal, and it
    passed, exit 0, having checked 3 of the 40 stays it was asked for."""
    from vigil.cli.streamcheck import replay_problems

    equal = {
        f"{prefix}{key}": value
        for prefix in ("", "deterioration_")
        for key, value in (("hours_compared", 40), ("hours_without_stream_score", 0), ("max_abs_diff", 3e-8))
    }
    whole = {**equal, "patients": 40, "stays_asked": 40, "timeout_s": 600, "worker_log": "/h/logs/replay-worker.log"}
    assert replay_problems(whole) == []
    assert replay_problems({**whole, "patients": 3}) == [
        "only 3 of 40 stays compared: the replay was cut off after 600 s; replay fewer stays (--limit) or see "
        "why the worker scores slowly (/h/logs/replay-worker.log)"
    ]
    assert replay_problems(equal) == []  # a result that does not say how many stays were asked: as before


def test_a_replayed_value_is_sent_as_the_file_wrote_it() -> None:
    """A room-air FiO2 of 0.21 read into float32 is 0.2099999934: sent so, ingest refused it as out of
    range (below 0.21) while vigil predict scored it; the replay sends 0.21."""
    from datetime import UTC, datetime

    from vigil.infra.replay import Stay, stay_events
    from vigil.schemas.codes import DYNAMIC_CODES
    from vigil.schemas.events import PatientEvent
    from vigil.schemas.normalize import normalize_event

    matrix = np.full((1, len(DYNAMIC_CODES)), np.nan, dtype=np.float32)
    matrix[0, DYNAMIC_CODES.index("FiO2")] = 0.21
    stay = Stay("p-room-air", matrix, {"Age": 60.0, "Gender": 1.0}, None)
    (event,) = [e for _, e in stay_events(stay, datetime(2025, 1, 1, tzinfo=UTC)) if e.code == "FiO2"]
    assert event.value == 0.21
    assert isinstance(normalize_event(event, datetime(2025, 1, 1, 1, tzinfo=UTC)), PatientEvent)
