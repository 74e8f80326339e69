"""What ``PatientWindow.apply`` reports as a change, the hours a closed hour's score reads after its
rows left the window, and the rows a window keeps for a carry that has not folded them."""

from datetime import UTC, datetime, timedelta

import numpy as np

from vigil.models.window import WINDOW_HOURS, PatientWindow
from vigil.schemas.codes import DYNAMIC_CODES
from vigil.schemas.events import PatientEvent

T0 = datetime(2026, 12, 1, 8, tzinfo=UTC)


def ev(code: str, value: float, minutes: float, kind: str = "vital") -> PatientEvent:
    return PatientEvent(patient_id="p", observed_at=T0 + timedelta(minutes=minutes), kind=kind, code=code, value=value)


def test_an_observation_a_later_one_in_its_hour_supersedes_is_accepted_but_changes_no_input() -> None:
    # valid data that arrives out of order (a monitor's and a nurse's charting of one hour): scored
    # (named by a score), never a ``duplicate`` dead letter; the hour keeps the latest value
    w = PatientWindow()
    early, late = ev("HR", 90, 10), ev("HR", 100, 50)
    assert w.apply(early) and w.apply(late)
    before = w.to_bytes()
    assert w.apply(ev("HR", 95, 30))  # another observation, older than the one the hour holds
    assert w.to_bytes() == before and w.rows[0][DYNAMIC_CODES.index("HR")] == (100.0, 3000)
    assert not w.apply(ev("HR", 100, 50))  # the one held, sent again: a duplicate


def backlog() -> tuple[PatientWindow, np.ndarray]:
    """60 hours of HR and respiration applied in one batch (a backlog after an outage): hours 0-11
    leave the window in it; the values as applied, [hour, variable]."""
    w, matrix = PatientWindow(), np.full((60, len(DYNAMIC_CODES)), np.nan, np.float32)
    for h in range(60):
        for code, value in (("HR", 60.0 + h), ("Resp", 12.0 + h % 9)):
            assert w.apply(ev(code, value, 60 * h + 9))
            matrix[h, DYNAMIC_CODES.index(code)] = value
    return w, matrix


def test_a_closed_hours_values_include_the_rows_that_left_the_window_in_its_batch() -> None:
    w, matrix = backlog()
    assert sorted(w.evicted) == list(range(12)) and min(w.rows) == 12
    hr = DYNAMIC_CODES.index("HR")
    for h in range(60):
        values = w.current_values(at_hour=h)
        assert values["HR"] == matrix[h, hr] and values["Resp"] == matrix[h, DYNAMIC_CODES.index("Resp")], h
        assert w.newest_observation(h) == T0 + timedelta(hours=h, minutes=9), h
        np.testing.assert_array_equal(w.matrix(h)[-1], matrix[h])
    assert w.current_values() == w.current_values(at_hour=59)  # the newest hour: the rows it always read


def test_rows_kept_for_a_carry_are_saved_and_read_back_as_evicted() -> None:
    w, _ = backlog()
    plain = w.to_bytes()
    assert plain[0] == 4  # nothing kept: the blob a worker of the release before reads
    w.keep_unfolded(5)
    blob = w.to_bytes()
    assert blob[0] == 5 and blob.startswith(plain[:1].replace(b"\x04", b"\x05") + plain[1:])
    back = PatientWindow.from_bytes(blob)
    assert back.rows == w.rows and back.evicted == {h: w.evicted[h] for h in range(5, 12)}
    assert back.unfolded == {} and back.to_bytes() == plain  # kept for one save: the next batch keeps them again
    assert back.current_values(at_hour=6) == w.current_values(at_hour=6)
    w.keep_unfolded(w.last_hour - WINDOW_HOURS + 1)
    assert w.to_bytes() == plain
