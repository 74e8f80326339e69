"""The stream's side of the stepping core (pure): from a patient's window after a batch and the carry
read beside it to the ``StepRequest`` the bundle scores.

A carry is started afresh at the window's first hour (``StayCarry(boundary=b, closed=b-1)``: its
aggregates begin there) when none is stored (a patient's first batch, or state written before the
stream stepped), when it cannot belong to this window (its committed hour is not before the window's
newest), or when the window was re-anchored in this batch (every hour index moved). Hours closed
before that start are not re-scored.
"""

from __future__ import annotations

from vigil.models.bundle_step import StepRequest
from vigil.models.stepping import StayCarry, window_rows
from vigil.models.window import PatientWindow


def fresh_carry(window: PatientWindow) -> StayCarry:
    start = min([*window.rows, *window.evicted, window.last_hour])
    return StayCarry(boundary=start, closed=start - 1)


def carry_fits(window: PatientWindow, carry: StayCarry) -> bool:
    return carry.boundary <= window.last_hour and carry.closed < window.last_hour


def step_request(window: PatientWindow, carry: StayCarry | None, anchor_before: int | None) -> StepRequest | None:
    """What to score for this patient after the batch's events were applied to ``window`` (None:
    no hour yet, e.g. only a treatment was recorded). ``anchor_before``: the window's anchor as loaded."""
    if window.last_hour < 0 or window.anchor_s is None:
        return None
    reanchored = anchor_before is not None and anchor_before != window.anchor_s
    if carry is None or reanchored or not carry_fits(window, carry):
        carry = fresh_carry(window)
    rows, last, changed = window_rows(window, carry)
    return StepRequest(carry, rows, last, window.statics(), changed)
