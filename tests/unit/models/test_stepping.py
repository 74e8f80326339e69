"""The stepping core: carry + window (the stream) equals one scan of the whole stay (offline)."""

from __future__ import annotations

import dataclasses
import struct
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic import synthetic_stay

from vigil.models.aggregates import Aggregates, fold, scan
from vigil.models.stay_features import (
    N_SEQUENCE_INPUTS,
    N_TREE_FEATURES,
    TREE_FEATURES,
    UNSEEN_IN_TRAINING,
)
from vigil.models.stepping import (
    StayCarry,
    WindowModel,
    advance_many,
    own_states,
    run_chains,
    state_tag,
    stay_inputs,
    window_rows,
)
from vigil.models.window import PatientWindow
from vigil.schemas.codes import DYNAMIC_CODES
from vigil.schemas.events import PatientEvent

STATIC = {"Age": 71.0, "Gender": 0.0}
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
HIDDEN = 8


class NumpyGRU:
    """A GRU cell + logistic head with random weights: stands in for the one-step ONNX graph."""

    hidden = HIDDEN
    window_model = None  # recurrent: the state is carried

    def __init__(self, seed: int = 0) -> None:
        r = np.random.default_rng(seed)
        self.w_x = r.normal(0, 0.3, (N_SEQUENCE_INPUTS, 3 * HIDDEN)).astype(np.float32)
        self.w_h = r.normal(0, 0.3, (HIDDEN, 3 * HIDDEN)).astype(np.float32)
        self.w_o = r.normal(0, 0.5, HIDDEN).astype(np.float32)

    def __call__(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gx, gh = x @ self.w_x, h @ self.w_h
        r = 1 / (1 + np.exp(-(gx[:, :HIDDEN] + gh[:, :HIDDEN])))
        z = 1 / (1 + np.exp(-(gx[:, HIDDEN : 2 * HIDDEN] + gh[:, HIDDEN : 2 * HIDDEN])))
        n = np.tanh(gx[:, 2 * HIDDEN :] + r * gh[:, 2 * HIDDEN :])
        h_new = ((1 - z) * n + z * h).astype(np.float32)
        return h_new, (1 / (1 + np.exp(-(h_new @ self.w_o)))).astype(np.float32)


class NumpyWindow:
    """A window model as the attention encoder is served: hour t's probability depends on the inputs
    of hours t-WINDOW+1..t alone (a recency-weighted pool of their embeddings). Offline it is a step
    with a cache (the embeddings of the hours before, right-aligned, and their count); the stream
    scores whole windows (``window_model``), here by stepping each window from the zero state."""

    window = 48
    embed = 3
    hidden = (window - 1) * embed + 1

    def __init__(self, seed: int = 0) -> None:
        r = np.random.default_rng(100 + seed)
        self.w_x = r.normal(0, 0.3, (N_SEQUENCE_INPUTS, self.embed)).astype(np.float32)
        self.w_o = r.normal(0, 1.0, self.embed).astype(np.float32)
        self.recency = np.linspace(0.5, 1.5, self.window)
        self.window_model = WindowModel(self.windows, self.window)

    def windows(self, x: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Each position's probability, stepped from the zero state through its own window only."""
        out = np.zeros(positions.shape, np.float32)
        for i, j in np.ndindex(*positions.shape):
            pos = positions[i, j]
            _, probs = run_chains(self, [(None, x[i, max(0, pos - self.window + 1) : pos + 1])], self.hidden)[0]
            out[i, j] = probs[-1]
        return out

    def __call__(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, k = self.window - 1, self.embed
        slots = np.concatenate([h[:, :-1].reshape(-1, n, k), np.tanh(x @ self.w_x)[:, None]], 1)
        count = h[:, -1]
        weights = (np.arange(n + 1)[None, :] >= n - count[:, None]) * self.recency[None, :]
        pooled = (slots * weights[..., None]).sum(1) / weights.sum(1, keepdims=True)
        h_new = np.concatenate([slots[:, 1:].reshape(-1, n * k), np.minimum(count + 1, n)[:, None]], 1)
        return h_new.astype(np.float32), (1 / (1 + np.exp(-(pooled @ self.w_o)))).astype(np.float32)


Step = NumpyGRU | NumpyWindow
KINDS = [NumpyGRU, NumpyWindow]


def stay(seed: int, hours: int) -> np.ndarray:
    return synthetic_stay(np.random.default_rng(seed), hours)[:, : len(DYNAMIC_CODES)].astype(np.float32)


def offline(rows: np.ndarray, step: Step) -> tuple[np.ndarray, np.ndarray]:
    inputs = stay_inputs(rows, STATIC)
    feats = inputs.tree_features(np.arange(len(rows)), STATIC)
    _, probs = run_chains(step, [(None, inputs.sequence)], step.hidden, keep_states=False)[0]
    return feats, probs


def events_of_hour(rows: np.ndarray, hour: int) -> list[PatientEvent]:
    out = []
    for j in np.nonzero(~np.isnan(rows[hour]))[0]:
        code = DYNAMIC_CODES[j]
        out.append(
            PatientEvent(
                patient_id="p",
                observed_at=T0 + timedelta(hours=hour, minutes=int(j)),
                kind="vital" if j < 8 else "lab",
                code=code,
                value=float(rows[hour, j]),
            )
        )
    return out


def stream(rows: np.ndarray, step: Step, batches: list[list[PatientEvent]]) -> dict[int, tuple[np.ndarray, float]]:
    """Apply each batch to a window loaded from bytes, score, save window + carry as bytes: the
    stream's cycle. Returns the last score of every hour (features, probability)."""
    window_blob, carry_blob = b"", b""
    scores: dict[int, tuple[np.ndarray, float]] = {}
    for batch in batches:
        w, c = PatientWindow.from_bytes(window_blob), StayCarry.from_bytes(carry_blob)
        for k, v in STATIC.items():
            w.static[k] = (v, 0)
        for e in batch:
            w.apply(e)
        r, last, changed = window_rows(w, c)
        feats, probs, carries = advance_many(
            step, step.hidden, [c], [r], [last], [STATIC], [changed], step.window_model
        )
        if step.window_model is not None:  # a window model carries no state
            assert carries[0].h_boundary is None and carries[0].h_closed is None
        scores[last] = (feats[0], float(probs[0]))
        window_blob, carry_blob = w.to_bytes(), carries[0].to_bytes()
    return scores


def hourly_batches(rows: np.ndarray, rng: np.random.Generator) -> list[list[PatientEvent]]:
    """Each hour's events in one to three batches, in shuffled order."""
    out = []
    for h in range(len(rows)):
        ev = events_of_hour(rows, h) or [
            PatientEvent(patient_id="p", observed_at=T0 + timedelta(hours=h), kind="vital", code="HR", value=80.0)
        ]
        rng.shuffle(ev)
        cuts = sorted(rng.choice(np.arange(1, len(ev) + 1), size=min(2, len(ev)), replace=False).tolist())
        parts = [ev[a:b] for a, b in zip([0, *cuts], [*cuts, len(ev)], strict=True) if b > a]
        out.extend(parts)
    return out


def fill_empty_hours(rows: np.ndarray) -> np.ndarray:
    """The stream learns of an hour only from an event in it: give empty hours an HR (as in the
    batches above) so offline sees the same rows."""
    rows = rows.copy()
    empty = np.isnan(rows).all(1)
    rows[empty, DYNAMIC_CODES.index("HR")] = 80.0
    return rows


# ---------------------------------------------------------------------------------- aggregates


def test_scan_in_pieces_equals_one_scan() -> None:
    rows = stay(1, 130)
    whole = scan(Aggregates.empty(), rows, 0)
    for cut in (1, 12, 47, 48, 100):
        first = fold(Aggregates.empty(), rows[:cut], 0)
        rest = scan(first, rows[cut:], cut)
        for name in ("n", "last_v", "last_h", "prev_v", "prev_h", "max", "min", "base_sum", "base_n"):
            np.testing.assert_array_equal(getattr(rest, name), getattr(whole, name)[cut:], err_msg=name)


def test_aggregate_and_carry_bytes_round_trip() -> None:
    agg = fold(Aggregates.empty(), stay(2, 70), 0)
    assert Aggregates.from_bytes(agg.to_bytes()).equals(agg)
    assert agg.byte_size() == len(agg.to_bytes()) < 1024
    carry = StayCarry(23, agg, np.arange(HIDDEN, dtype=np.float32), 69, -np.arange(HIDDEN, dtype=np.float32))
    back = StayCarry.from_bytes(carry.to_bytes())
    assert back.boundary == 23 and back.closed == 69 and back.agg.equals(agg)
    np.testing.assert_array_equal(back.h_boundary, carry.h_boundary)
    np.testing.assert_array_equal(back.h_closed, carry.h_closed)
    assert StayCarry.from_bytes(StayCarry().to_bytes()).h_closed is None
    tagged = StayCarry.from_bytes(dataclasses.replace(carry, model=0xDEADBEEF).to_bytes())
    assert tagged.model == 0xDEADBEEF
    assert StayCarry.from_bytes(StayCarry(model=7).to_bytes()).model == 0  # no states: no writer


def test_a_version_1_carry_reads_as_untagged_and_an_unknown_version_is_refused() -> None:
    """Carries written before tags (2.0-2.4's workers) keep their states, marked as of an unknown writer."""
    agg = fold(Aggregates.empty(), stay(3, 60), 0)
    h = np.arange(HIDDEN, dtype=np.float32)
    a = agg.to_bytes()
    v1 = struct.pack("<BiiHBH", 1, 12, 40, HIDDEN, 3, len(a)) + a + h.tobytes() + (-h).tobytes()
    back = StayCarry.from_bytes(v1)
    assert (back.boundary, back.closed, back.model) == (12, 40, 0) and back.agg.equals(agg)
    np.testing.assert_array_equal(back.h_closed, -h)
    with pytest.raises(ValueError, match="version 9"):
        StayCarry.from_bytes(b"\x09" + v1[1:])


def test_own_states_drops_another_models_states_and_keeps_the_rest() -> None:
    agg = fold(Aggregates.empty(), stay(4, 70), 0)
    h = np.ones(HIDDEN, np.float32)
    mine = StayCarry(20, agg, h, 60, h, model=5)
    assert own_states(mine, 5, HIDDEN) == (mine, False)
    untagged = dataclasses.replace(mine, model=0)  # a version-1 blob of the right size: kept
    assert own_states(untagged, 5, HIDDEN) == (untagged, False)
    stateless = StayCarry(20, agg, None, 60, None)  # a window model's carry: nothing to drop
    assert own_states(stateless, 5, HIDDEN) == (stateless, False)
    nan = np.array([np.nan, *h[1:]], np.float32)
    kept, dropped = own_states(dataclasses.replace(mine, h_closed=nan), 5, HIDDEN)  # the boundary's is good
    assert dropped and kept == dataclasses.replace(mine, h_closed=None)  # replayed from it
    not_finite = dataclasses.replace(mine, h_boundary=nan)
    foreigners = (dataclasses.replace(mine, model=6), dataclasses.replace(untagged, h_closed=np.ones(3, np.float32)))
    for foreign in (*foreigners, not_finite):
        kept, dropped = own_states(foreign, 5, HIDDEN)
        assert dropped and kept.h_boundary is None and kept.h_closed is None
        assert (kept.boundary, kept.closed, kept.agg) == (20, 60, agg)  # features and final hours unchanged
    assert state_tag("00000000" + "f" * 56) == 1 and state_tag("7de383e4" + "0" * 56) == 0x7DE383E4


# ---------------------------------------------------------------------------------- features


def test_feature_names_and_no_site_descriptors() -> None:
    assert len(TREE_FEATURES) == N_TREE_FEATURES == len(set(TREE_FEATURES))
    for banned in ("Unit1", "Unit2", "HospAdmTime", "ICULOS", *UNSEEN_IN_TRAINING):
        assert not any(n.startswith(banned) for n in TREE_FEATURES)


def test_whole_stay_history_survives_the_window() -> None:
    rows = stay(3, 120)
    lactate = DYNAMIC_CODES.index("Lactate")
    rows[:, lactate] = np.nan
    rows[2, lactate] = 9.5  # one early lactate, long gone from the window at hour 119
    feats = stay_inputs(rows, STATIC).tree_features([119], STATIC)[0]
    named = dict(zip(TREE_FEATURES, feats.tolist(), strict=True))
    assert named["Lactate_last"] == pytest.approx(9.5) and named["Lactate_max_stay"] == pytest.approx(9.5)
    assert named["Lactate_hours_since"] == 117 and named["icu_hours"] == 119


def test_unseen_channel_never_reaches_a_model() -> None:
    rows = stay(4, 60)
    with_etco2 = rows.copy()
    with_etco2[:, DYNAMIC_CODES.index("EtCO2")] = 33.0
    a, b = stay_inputs(rows, STATIC), stay_inputs(with_etco2, STATIC)
    np.testing.assert_array_equal(a.sequence, b.sequence)
    np.testing.assert_array_equal(a.tree_features(range(60), STATIC), b.tree_features(range(60), STATIC))


def test_appending_rows_never_changes_earlier_hours() -> None:
    rows = stay(5, 90)
    full = stay_inputs(rows, STATIC)
    for t in (0, 10, 47, 60):
        prefix = stay_inputs(rows[: t + 1], STATIC)
        np.testing.assert_array_equal(
            prefix.tree_features(range(t + 1), STATIC), full.tree_features(range(t + 1), STATIC)
        )
        np.testing.assert_array_equal(prefix.sequence, full.sequence[: t + 1])


# ---------------------------------------------------------------------------------- stream == offline


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("hours", [5, 48, 49, 130])
def test_stream_equals_offline_every_hour(hours: int, kind: type[Step]) -> None:
    rows = fill_empty_hours(stay(10 + hours, hours))
    step = kind()
    feats, probs = offline(rows, step)
    got = stream(rows, step, hourly_batches(rows, np.random.default_rng(hours)))
    assert sorted(got) == list(range(hours))
    for t, (f, p) in got.items():
        np.testing.assert_array_equal(f, feats[t], err_msg=f"hour {t}")
        assert abs(p - probs[t]) <= 1e-5, t


@pytest.mark.parametrize("kind", KINDS)
def test_late_event_inside_window_replays_exactly(kind: type[Step]) -> None:
    rows = fill_empty_hours(stay(21, 100))
    step = kind()
    batches = hourly_batches(rows, np.random.default_rng(0))
    # at hour 80 a troponin drawn at hour 65 arrives (closed, inside the window): later hours must see it
    late = PatientEvent(
        patient_id="p", observed_at=T0 + timedelta(hours=65, minutes=59), kind="lab", code="TroponinI", value=7.0
    )
    at = next(i for i, b in enumerate(batches) if b[0].observed_at >= T0 + timedelta(hours=80))
    batches.insert(at, [late])
    changed = rows.copy()
    changed[65, DYNAMIC_CODES.index("TroponinI")] = 7.0
    feats, probs = offline(changed, step)
    got = stream(rows, step, batches)
    for t in range(80, 100):
        np.testing.assert_array_equal(got[t][0], feats[t])
        assert abs(got[t][1] - probs[t]) <= 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_many_patients_in_one_batch_equal_one_at_a_time(kind: type[Step]) -> None:
    step = kind(3)
    stays = [fill_empty_hours(stay(30 + i, n)) for i, n in enumerate((3, 50, 75))]
    offline_probs = [offline(r, step)[1] for r in stays]
    carries = [StayCarry() for _ in stays]
    for h in range(75):
        live = [i for i, r in enumerate(stays) if h < len(r)]
        rows = [stays[i][carries[i].boundary : h + 1] for i in live]
        _, probs, new = advance_many(
            step,
            step.hidden,
            [carries[i] for i in live],
            rows,
            [h] * len(live),
            [STATIC] * len(live),
            [h] * len(live),
            step.window_model,
        )
        for k, i in enumerate(live):
            carries[i] = new[k]
            assert abs(probs[k] - offline_probs[i][h]) <= 1e-5


@settings(max_examples=25, deadline=None)
@given(
    hours=st.integers(1, 110),
    seed=st.integers(0, 10_000),
    late=st.lists(st.tuples(st.integers(0, 109), st.integers(0, 47)), max_size=4),
    window_model=st.booleans(),
)
def test_property_stream_equals_offline(hours: int, seed: int, late: list[tuple[int, int]], window_model: bool) -> None:
    """Random stays, random batching, random late events inside the window, both kinds of model."""
    rng = np.random.default_rng(seed)
    rows = fill_empty_hours(synthetic_stay(rng, hours)[:, : len(DYNAMIC_CODES)].astype(np.float32))
    step = (NumpyWindow if window_model else NumpyGRU)(seed % 5)
    batches = hourly_batches(rows, rng)
    final = rows.copy()
    for (at_hour, back), code in zip(late, ("WBC", "Lactate", "Creatinine", "Platelets"), strict=False):
        if at_hour >= hours:
            continue
        target = max(0, at_hour - back)
        value = float(rng.uniform(5, 15))
        event = PatientEvent(
            patient_id="p", observed_at=T0 + timedelta(hours=target, minutes=59), kind="lab", code=code, value=value
        )
        at = next((i for i, b in enumerate(batches) if b[0].observed_at >= T0 + timedelta(hours=at_hour)), None)
        if at is None or target < at_hour - 47:
            continue
        batches.insert(at + 1, [event])
        final[target, DYNAMIC_CODES.index(code)] = value
    got = stream(rows, step, batches)
    feats, probs = offline(final, step)
    last = len(rows) - 1
    np.testing.assert_array_equal(got[last][0], feats[last])
    assert abs(got[last][1] - probs[last]) <= 1e-5
