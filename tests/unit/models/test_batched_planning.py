"""The stream plans a whole batch of patients at once (``stepping.plan_advances``: rows padded to
[B, T, N_VARS], one scan, one feature call); that must give, bit for bit, what planning each patient
alone gives, whatever the other patients in the batch, their lengths and their carries."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic import synthetic_stay

from vigil.models.aggregates import Aggregates, fold, scan
from vigil.models.branchfree import where
from vigil.models.stepping import Advance, StayCarry, plan_advance, plan_advances
from vigil.schemas.codes import DYNAMIC_CODES

STATIC = {"Age": 71.0, "Gender": 0.0}
HIDDEN = 8


def random_patient(rng: np.random.Generator) -> tuple[StayCarry, np.ndarray, int, dict[str, float], int | None]:
    """A stay scored at a random hour from a random, consistent carry: hours before the boundary
    folded into its aggregates, some committed, a late event sometimes (``changed_from``)."""
    hours = int(rng.integers(1, 140))
    rows = synthetic_stay(rng, hours)[:, : len(DYNAMIC_CODES)].astype(np.float32)
    last = hours - 1
    boundary = int(rng.integers(max(0, last - 90), last + 1))  # > 64 rows now and then: its own group
    closed = int(rng.integers(boundary - 1, last))
    agg = fold(Aggregates.empty(), rows[:boundary], 0)
    h_b = rng.normal(size=HIDDEN).astype(np.float32) if boundary else None
    h_c = rng.normal(size=HIDDEN).astype(np.float32) if closed >= 0 else None
    carry = StayCarry(boundary, agg, h_b, closed, h_c)
    changed = None if rng.random() < 0.6 else int(rng.integers(boundary - 1, last + 1))
    static = {} if rng.random() < 0.2 else {"Age": float(rng.integers(18, 95)), "Gender": float(rng.integers(0, 2))}
    return carry, rows[boundary:], last, static, changed


def assert_same_plan(a: Advance, b: Advance) -> None:
    assert (a.hour, a.new_boundary, a.commit_steps) == (b.hour, b.new_boundary, b.commit_steps)
    np.testing.assert_array_equal(a.features, b.features)
    assert a.closed_features is not None and b.closed_features is not None
    np.testing.assert_array_equal(a.closed_features, b.closed_features)
    for chain_a, chain_b in ((a.boundary_chain, b.boundary_chain), (a.closed_chain, b.closed_chain)):
        assert (chain_a[0] is None) == (chain_b[0] is None)
        if chain_a[0] is not None:
            np.testing.assert_array_equal(chain_a[0], chain_b[0])
        np.testing.assert_array_equal(chain_a[1], chain_b[1])
        assert chain_a[1].dtype == chain_b[1].dtype == np.float32
    assert a.new_agg.equals(b.new_agg)
    for f in ("base_sum", "max", "last_v"):  # equal bits, not only equal values (signed zeros)
        assert getattr(a.new_agg, f).tobytes() == getattr(b.new_agg, f).tobytes()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 100_000), size=st.integers(1, 40))
def test_batched_plans_equal_one_patient_at_a_time(seed: int, size: int) -> None:
    rng = np.random.default_rng(seed)
    patients = [random_patient(rng) for _ in range(size)]
    batched = plan_advances(*(list(column) for column in zip(*patients, strict=True)))
    for patient, plan in zip(patients, batched, strict=True):
        assert_same_plan(plan, plan_advance(*patient))


def test_a_full_batch_of_windows_and_a_long_gap() -> None:
    """64 full windows (the scan steps through time over the batch) and one patient back after a
    long gap (a group of its own): each equals its plan alone (accumulate along one stay)."""
    rng = np.random.default_rng(7)
    patients = []
    while len(patients) < 64:
        carry, rows, last, static, changed = random_patient(rng)
        if len(rows) >= 40:
            patients.append((carry, rows, last, static, changed))
    rows = synthetic_stay(rng, 400)[:, : len(DYNAMIC_CODES)].astype(np.float32)
    patients.append(
        (
            StayCarry(0, Aggregates.empty(), None, 100, rng.normal(size=HIDDEN).astype(np.float32)),
            rows,
            399,
            STATIC,
            None,
        )
    )
    batched = plan_advances(*(list(column) for column in zip(*patients, strict=True)))
    for patient, plan in zip(patients, batched, strict=True):
        assert_same_plan(plan, plan_advance(*patient))


def test_batched_scan_keeps_signed_zeros_and_extremes() -> None:
    """A wide batch steps through time, one stay accumulates: the same operations in the same order,
    down to the sign of a zero (max(-0.0, 0.0) is whichever comes first)."""
    rng = np.random.default_rng(3)
    shape = (9, 30, len(DYNAMIC_CODES))
    rows = np.where(rng.random(shape) < 0.4, rng.normal(size=shape), np.nan).astype(np.float32)
    before = np.full((9, 5, len(DYNAMIC_CODES)), np.nan, np.float32)
    before[:, 2, 0] = -0.0  # carried max and min of variable 0: -0.0
    rows[:, 0, 0], rows[:, 1, 0], rows[:, 2, 1] = 0.0, -0.0, 0.0
    rows[:, 4, 1] = -0.0
    rows[1, 0, 2], rows[2, :, 4] = np.float32(3e38), -np.inf
    init = Aggregates.stack([fold(Aggregates.empty(), r, 0) for r in before])
    hour0 = np.arange(9, dtype=np.int32) * 3 + 5
    batch = scan(init, rows, hour0)
    for b in range(9):
        alone = scan(fold(Aggregates.empty(), before[b], 0), rows[b], int(hour0[b]))
        for name in ("n", "last_v", "last_h", "prev_v", "prev_h", "max", "min", "base_sum", "base_n", "hours"):
            assert getattr(batch, name)[b].tobytes() == getattr(alone, name).tobytes(), (b, name)


def test_branch_free_where_is_np_where() -> None:
    rng = np.random.default_rng(5)
    cond = rng.random((6, 7)) < 0.5
    floats = rng.normal(size=(6, 7)).astype(np.float32)
    floats[0, 0], floats[1, 1] = -0.0, np.nan
    cases = [
        (cond, floats, np.nan),
        (cond, floats, np.float32(-0.0)),
        (cond, floats.astype(np.float64), floats[:1]),  # broadcasting, promotion to float64
        (cond, np.arange(7, dtype=np.int32), -1),
        (cond, np.arange(7, dtype=np.int32), np.nan),  # int and NaN: float64
        (cond[:, :1], cond, ~cond),
        (np.bool_(True), floats, 0.0),
    ]
    for c, a, b in cases:
        want, got = np.where(c, a, b), where(c, a, b)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes()
