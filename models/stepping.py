"""The stepping core: one pure path from a patient's hours to model inputs and recurrent states,
used by training, ``vigil predict`` and the stream.

Per patient the state is

- the window: the last <= 48 hourly rows (``models.window.PatientWindow``; events land in the
  current hour, late events may change any hour inside the window);
- the carry (``StayCarry``): the running aggregates of every hour that left the window
  (``models.aggregates``: immutable once folded, fixed size per measured variable), the recurrent
  model's state after the last folded hour (``h_boundary``) and after the last closed hour
  (``h_closed``), as float32 bytes.

Scoring hour L (``advance``):

1. rows from the carry's boundary to L (window rows, plus the rows that left the window in this
   batch) are scanned from the carried aggregate: the aggregate of every hour in the window;
2. tree features of hour L = f(aggregate of L, rows L-23..L, statics, L);
3. sequence inputs of every hour = f(aggregate of that hour, its row);
4. the recurrent state steps from ``h_closed`` through the hours not yet committed (normally: the
   hour that just closed) and once more through hour L (a provisional score, not committed);
   hours leaving the window are stepped from ``h_boundary``. A late event in a closed hour
   (``changed_from <= closed``) replays from ``h_boundary``: at most 48 steps, exact. So does a carry
   whose hours are final but which holds no state (``own_states`` drops another model's states; a
   window model carries none): the model restarts from a zero state at the boundary.

Offline (``stay_inputs`` + ``run_chains``) is the same computation started at admission with an
empty carry: the whole stay is one scan and one chain of steps. ``tests/unit/models/test_stepping.py``
checks the two forms equal on random stays longer than the window, with late events, including a
hypothesis property test.

The step model is any ``StepFn``: ``(x [B, F], h [B, H]) -> (h' [B, H], p [B])``, in serving the
one-step ONNX graph (``models.bundle``): a GRU's hidden state, or (since bundle 2.5) the attention
encoder's key/value cache of the 47 hours before (``models.train.attention.AttentionStep``). The
core never looks inside ``h``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from vigil.models.aggregates import N_VARS, Aggregates, AggregateSeries, scan
from vigil.models.stay_features import (
    batch_sequence_inputs,
    batch_tree_features,
    sequence_inputs,
    static_vector,
    tree_features,
)
from vigil.models.window import PatientWindow

WINDOW_HOURS = 48
StepFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
# a window model over each patient's hours: (x [P, T, F] right-padded, positions [P, K] of the hours
# to score) -> their probabilities [P, K], each from the hour's own window of hours
WindowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class WindowModel:
    """A sequence model whose probability at hour t depends on hours t-hours+1..t alone (the
    attention encoder), scored from whole windows: nothing carried (``plan_advances``)."""

    fn: WindowFn
    hours: int


@dataclass
class StayCarry:
    """What a patient's scores need from outside the 48-hour window (Redis, beside the window)."""

    boundary: int = 0  # first hour not folded: hours < boundary live only in ``agg`` and ``h_boundary``
    agg: Aggregates = field(default_factory=Aggregates.empty)
    h_boundary: np.ndarray | None = None  # recurrent state after hour boundary-1 (None: admission)
    closed: int = -1  # last hour whose recurrent state is committed in ``h_closed``
    h_closed: np.ndarray | None = None
    # which sequence model wrote the states (``state_tag`` of its one-step graph); 0: unknown (a
    # version-1 blob, written before carries were tagged) or no states
    model: int = 0

    # version u8, boundary i32, closed i32, hidden u16, flags u8 (1: h_boundary, 2: h_closed), agg len u16,
    # then (version 2) the writer's tag u32
    _VERSION = 2
    _HEADERS = {1: "<BiiHBH", 2: "<BiiHBHI"}

    def to_bytes(self) -> bytes:
        hidden = next((len(h) for h in (self.h_boundary, self.h_closed) if h is not None), 0)
        flags = (self.h_boundary is not None) | ((self.h_closed is not None) << 1)
        agg = self.agg.to_bytes()
        head = (self._VERSION, self.boundary, self.closed, hidden, flags, len(agg), self.model if flags else 0)
        parts = [struct.pack(self._HEADERS[self._VERSION], *head), agg]
        parts += [h.astype("<f4").tobytes() for h in (self.h_boundary, self.h_closed) if h is not None]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, blob: bytes | None) -> StayCarry:
        if not blob:
            return cls()
        header = cls._HEADERS.get(blob[0])
        if header is None:
            raise ValueError(f"unknown carry blob version {blob[0]}")
        _, boundary, closed, hidden, flags, n_agg, *tag = struct.unpack_from(header, blob)
        pos = struct.calcsize(header)
        agg = Aggregates.from_bytes(blob[pos : pos + n_agg])
        pos += n_agg
        states: list[np.ndarray | None] = []
        for bit in (1, 2):
            if flags & bit:
                states.append(np.frombuffer(blob, "<f4", hidden, pos).astype(np.float32))
                pos += 4 * hidden
            else:
                states.append(None)
        return cls(boundary, agg, states[0], closed, states[1], tag[0] if tag else 0)


def state_tag(step_sha256: str) -> int:
    """The tag a carry's states are written with: the first 32 bits of the one-step graph's sha256
    (never 0, which marks an unknown writer)."""
    return int(step_sha256[:8], 16) or 1


def own_states(carry: StayCarry, tag: int, hidden: int) -> tuple[StayCarry, bool]:
    """``carry`` as a recurrent model with ``tag`` and ``hidden`` floats of state may step from it:
    states written by another sequence model (another tag, or another size) are dropped, so the
    model restarts from a zero state at the carry's boundary and replays the window (``plan_advances``)
    instead of stepping another model's state. The aggregates, the boundary and the hours already
    final are kept: tree features and published hours do not change. An untagged state of the right
    size (a version-1 blob: 2.0-2.4's GRU) is kept, as before tags. A state that is not all finite
    is dropped too: stepped on, a NaN would stay in every later hour of the stay (each score left
    out as not a number), where a replay of the window scores the next batch (from the boundary's
    state when only the closed hours' was not finite). True: states were dropped."""
    states = [h for h in (carry.h_boundary, carry.h_closed) if h is not None]
    mine = carry.model in (0, tag) and all(len(h) == hidden for h in states)
    if not states or mine and all(np.isfinite(h).all() for h in states):
        return carry, False
    if mine and carry.h_boundary is not None and np.isfinite(carry.h_boundary).all():
        return replace(carry, h_closed=None), True  # replayed exactly from the boundary's
    return StayCarry(carry.boundary, carry.agg, None, carry.closed, None), True


@dataclass
class StayInputs:
    """Every model input of a run of hours ``hour0 .. hour0 + T - 1`` (one patient)."""

    rows: np.ndarray  # [T, N_VARS]
    series: AggregateSeries
    sequence: np.ndarray  # [T, N_SEQUENCE_INPUTS]
    hour0: int

    def tree_features(self, hours: Sequence[int] | np.ndarray, static: Mapping[str, float] | None) -> np.ndarray:
        return tree_features(self.rows, self.series, np.asarray(hours) - self.hour0, static)


def stay_inputs(
    rows: np.ndarray, static: Mapping[str, float] | None, carry: Aggregates | None = None, hour0: int = 0
) -> StayInputs:
    """Scan ``rows`` (first row = hour ``hour0``) from ``carry`` (default: admission)."""
    rows = np.asarray(rows, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != N_VARS:
        raise ValueError(f"expected [T, {N_VARS}] rows in DYNAMIC_CODES order, got {rows.shape}")
    series = scan(carry if carry is not None else Aggregates.empty(), rows, hour0)
    return StayInputs(rows, series, sequence_inputs(rows, series, static), hour0)


def run_chains(
    step: StepFn, chains: Sequence[tuple[np.ndarray | None, np.ndarray]], hidden: int, keep_states: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Step many independent chains (initial state or None, inputs [k, F]) in lock step, one batched
    call per step index; returns per chain (states after each step [k, H], probabilities [k]).
    ``keep_states=False`` (offline scoring, which needs only the probabilities) returns [0, H] states:
    the attention encoder's state is ~3,000 floats, too many to keep for every hour of many stays."""
    lengths = np.array([len(x) for _, x in chains], dtype=np.int64)
    states = [np.zeros((n if keep_states else 0, hidden), np.float32) for n in lengths]
    probs = [np.zeros(n, np.float32) for n in lengths]
    if not len(chains) or lengths.max(initial=0) == 0:
        return list(zip(states, probs, strict=True))
    h = np.stack([np.zeros(hidden, np.float32) if h0 is None else h0 for h0, _ in chains]).astype(np.float32)
    order = np.argsort(-lengths, kind="stable")  # longest first: the active chains are a prefix
    h = h[order]
    xs = [chains[i][1] for i in order]
    for j in range(int(lengths.max())):
        active = int((lengths[order] > j).sum())
        x = np.stack([xs[k][j] for k in range(active)]).astype(np.float32)
        h_new, p = step(x, h[:active])
        h[:active] = h_new
        for k in range(active):
            if keep_states:
                states[order[k]][j] = h_new[k]
            probs[order[k]][j] = p[k]
    return list(zip(states, probs, strict=True))


@dataclass
class Advance:
    """One patient's scoring at hour ``hour``: tree features, and the step chains to run."""

    hour: int
    features: np.ndarray  # [N_TREE_FEATURES]
    boundary_chain: tuple[np.ndarray | None, np.ndarray]
    closed_chain: tuple[np.ndarray | None, np.ndarray]
    new_boundary: int
    new_agg: Aggregates
    commit_steps: int  # steps of the closed chain that are committed (the last one is provisional)
    # tree features of the hours that close in this advance (carry.closed+1 .. hour-1), computed in the
    # same call as ``features``: the stream publishes their final scores
    closed_features: np.ndarray | None = None
    # False for a window model: its state is rebuilt from the window every advance, never carried
    stateful: bool = True

    def carry(self, h_boundary: np.ndarray | None, h_closed: np.ndarray | None) -> StayCarry:
        """The carry to save, given the states after the boundary chain and the committed steps."""
        if not self.stateful:
            h_boundary = h_closed = None
        return StayCarry(self.new_boundary, self.new_agg, h_boundary, self.hour - 1, h_closed)

    def finish(
        self, carry: StayCarry, boundary_out: tuple[np.ndarray, np.ndarray], closed_out: tuple[np.ndarray, np.ndarray]
    ) -> tuple[StayCarry, float]:
        """The new carry and the provisional probability of ``hour``."""
        h_b = boundary_out[0][-1] if len(boundary_out[0]) else self.boundary_chain[0]
        h_c = closed_out[0][self.commit_steps - 1] if self.commit_steps else self.closed_chain[0]
        return self.carry(h_b, h_c), float(closed_out[1][-1])


def plan_advance(
    carry: StayCarry,
    rows: np.ndarray,
    last_hour: int,
    static: Mapping[str, float] | None,
    changed_from: int | None = None,
    window: int | None = None,
    columns: np.ndarray | None = None,
) -> Advance:
    """Plan the scoring of hour ``last_hour``. ``rows``: hours ``carry.boundary .. last_hour`` (the
    window and whatever left it since the carry was saved); ``changed_from``: the lowest hour an
    applied event changed (None: only the newest hour changed or nothing did); ``window``: see
    ``plan_advances``."""
    return plan_advances([carry], [rows], [last_hour], [static], [changed_from], window, columns)[0]


def plan_advances(
    carries: Sequence[StayCarry],
    rows: Sequence[np.ndarray],
    last_hours: Sequence[int],
    statics: Sequence[Mapping[str, float] | None],
    changed_from: Sequence[int | None],
    window: int | None = None,
    columns: np.ndarray | None = None,
) -> list[Advance]:
    """``plan_advances`` of many patients: their rows padded to one [B, T, N_VARS] array (per group of
    similar lengths, ``_length_groups``), one batched scan, one tree-feature and one sequence-input
    call for every (patient, hour) the batch needs. Equal, bit for bit, to planning each patient
    alone (``tests/unit/models/test_stepping.py``).

    ``window`` (the hours of a ``WindowModel``, such as the attention encoder): no state is carried;
    the plan's step inputs (``closed_chain``) begin ``window - 1`` hours before the first hour it
    scores, and ``score_windows`` scores each hour from its own window. Those hours are in the rows
    whenever the stay is older than the window (the boundary is then at most ``hour - WINDOW_HOURS``;
    a stay younger than that has every hour since admission), so the scores equal offline scoring,
    late events included, without 24 KB of key/value caches (two states) per patient in Redis.

    ``columns``: the sequence inputs the model reads, as indices into ``SEQUENCE_INPUTS`` (a bundle's
    ``sequence_columns``; None: all of them)."""
    n = len(carries)
    if not n == len(rows) == len(last_hours) == len(statics) == len(changed_from):
        raise ValueError("one carry, rows, hour, static and changed_from per patient")
    for carry, r, last in zip(carries, rows, last_hours, strict=True):
        if len(r) != last - carry.boundary + 1:
            raise ValueError("rows must span the carry's boundary to the scored hour")
    plans: list[Advance | None] = [None] * n
    for group in _length_groups([len(r) for r in rows]):
        for i, plan in zip(
            group,
            _plan_group(
                [(carries[i], rows[i], last_hours[i], changed_from[i]) for i in group],
                [statics[i] for i in group],
                window,
                columns,
            ),
            strict=True,
        ):
            plans[i] = plan
    return plans  # type: ignore[return-value]


def _length_groups(lengths: Sequence[int]) -> list[list[int]]:
    """Patients whose row counts share a power-of-two bucket (at least 64: a full window is 48-49
    rows), so padding at most doubles a group's work; a patient back after a long gap has many rows."""
    groups: dict[int, list[int]] = {}
    for i, length in enumerate(lengths):
        groups.setdefault(max(64, 1 << max(length - 1, 0).bit_length()), []).append(i)
    return list(groups.values())


def _plan_group(
    items: Sequence[tuple[StayCarry, np.ndarray, int, int | None]],
    statics: Sequence[Mapping[str, float] | None],
    window: int | None,
    columns: np.ndarray | None,
) -> list[Advance]:
    t_max = max(len(r) for _, r, _, _ in items)
    padded = np.full((len(items), t_max, N_VARS), np.nan, np.float32)
    for k, (_, r, _, _) in enumerate(items):
        padded[k, : len(r)] = r
    series = scan(
        Aggregates.stack([c.agg for c, _, _, _ in items]), padded, np.array([c.boundary for c, _, _, _ in items])
    )
    static_rows = np.stack([static_vector(s) for s in statics])
    # which rows of each patient need tree features (the hours that close, then the scored hour) and
    # sequence inputs (the hours leaving the window; the uncommitted hours), as index ranges
    emit: list[np.ndarray] = []
    folds: list[np.ndarray] = []
    steps: list[np.ndarray] = []
    n_folded: list[int] = []  # hours that leave the window in this advance (folded into the carry)
    replays = [window is None and _replays(carry, changed) for carry, _, _, changed in items]
    for (carry, r, last, _), replay in zip(items, replays, strict=True):
        rows_t = np.arange(len(r))
        first = max(carry.closed + 1, carry.boundary)  # the first hour scored
        emit.append(rows_t[first - carry.boundary :])
        folded = rows_t[: max(carry.boundary, last - WINDOW_HOURS + 1) - carry.boundary]
        n_folded.append(len(folded))
        if window is None:
            closed = carry.boundary - 1 if replay else carry.closed
            folds.append(folded)
            steps.append(rows_t[closed + 1 - carry.boundary :])
        else:  # no state to fold; the steps rebuild it from the hours before the first scored one
            folds.append(folded[:0])
            steps.append(rows_t[max(carry.boundary, first - window + 1) - carry.boundary :])
    pat_of = [np.full(len(e), k) for k, e in enumerate(emit)]
    feats = batch_tree_features(padded, series, np.concatenate(pat_of), np.concatenate(emit), static_rows)
    seq_rows = [np.concatenate([f, s]) for f, s in zip(folds, steps, strict=True)]
    seq_pat = np.concatenate([np.full(len(x), k) for k, x in enumerate(seq_rows)])
    seq = batch_sequence_inputs(padded, series, seq_pat, np.concatenate(seq_rows), static_rows)
    if columns is not None:
        seq = seq[:, columns]
    plans = []
    at_f = at_s = 0
    for k, ((carry, _, last, _), replay) in enumerate(zip(items, replays, strict=True)):
        n_fold, n_step = len(folds[k]), len(steps[k])
        x_fold, x_step = seq[at_s : at_s + n_fold], seq[at_s + n_fold : at_s + n_fold + n_step]
        at_s += n_fold + n_step
        emitted = feats[at_f : at_f + len(emit[k])]
        at_f += len(emit[k])
        start = None if window is not None else carry.h_boundary if replay else carry.h_closed
        plans.append(
            Advance(
                hour=last,
                features=emitted[-1],
                boundary_chain=(carry.h_boundary if window is None else None, x_fold),
                closed_chain=(start, x_step),
                new_boundary=carry.boundary + n_folded[k],
                new_agg=series.at(n_folded[k] - 1, patient=k) if n_folded[k] else carry.agg,
                commit_steps=n_step - 1,
                closed_features=emitted[:-1],
                stateful=window is None,
            )
        )
    return plans


def _replays(carry: StayCarry, changed: int | None) -> bool:
    """A recurrent model steps again from ``h_boundary`` through the window: a late event changed a
    closed hour, or hours are final but no state of them is carried (states dropped by
    ``own_states``, or a window model's carry read by a recurrent model)."""
    committed_without_state = carry.h_closed is None and carry.closed >= carry.boundary
    return committed_without_state or (changed is not None and changed <= carry.closed)


def score_windows(model: WindowModel, plans: Sequence[Advance]) -> list[np.ndarray]:
    """A window model's probabilities of every hour each plan scores (the hours that close, then the
    current one), from one call for the batch: each patient's step inputs (from ``hours - 1`` before
    its first scored hour) right-padded to [P, T, F], the positions of its scored hours [P, K] (padded
    by repeating its last), so a patient's windows share the computation of their common hours."""
    if not plans:
        return []
    xs = [plan.closed_chain[1] for plan in plans]
    counts = [(0 if plan.closed_features is None else len(plan.closed_features)) + 1 for plan in plans]
    hours = np.zeros((len(plans), max(len(x) for x in xs), xs[0].shape[1]), np.float32)
    positions = np.zeros((len(plans), max(counts)), np.int64)
    for i, (x, n) in enumerate(zip(xs, counts, strict=True)):
        hours[i, : len(x)] = x
        positions[i] = np.minimum(np.arange(len(x) - n, len(x) - n + positions.shape[1]), len(x) - 1)
    probs = np.asarray(model.fn(hours, positions), np.float32)
    return [probs[i, :n] for i, n in enumerate(counts)]


def advance_many(
    step: StepFn,
    hidden: int,
    carries: Sequence[StayCarry],
    rows: Sequence[np.ndarray],
    last_hours: Sequence[int],
    statics: Sequence[Mapping[str, float] | None],
    changed_from: Sequence[int | None],
    window: WindowModel | None = None,
    columns: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, list[StayCarry]]:
    """Score many patients at their newest hour: (tree features [B, F], provisional sequence-model
    probabilities [B], new carries). Every step of the batch runs in lock step; a ``window`` model
    scores every window of the batch in one call instead (``plan_advances``)."""
    plans = plan_advances(carries, rows, last_hours, statics, changed_from, window.hours if window else None, columns)
    feats = np.stack([p.features for p in plans]) if plans else np.zeros((0, 0), np.float32)
    if window is not None:
        probs = score_windows(window, plans)
        return feats, np.array([p[-1] for p in probs], np.float32), [p.carry(None, None) for p in plans]
    outs = run_chains(step, [p.boundary_chain for p in plans] + [p.closed_chain for p in plans], hidden)
    b = len(plans)
    finished = [p.finish(c, outs[i], outs[b + i]) for i, (p, c) in enumerate(zip(plans, carries, strict=True))]
    return feats, np.array([f[1] for f in finished], np.float32), [f[0] for f in finished]


def window_rows(window: PatientWindow, carry: StayCarry) -> tuple[np.ndarray, int, int | None]:
    """(rows from the carry's boundary to the window's newest hour, that hour, changed_from) of a
    window whose events of this batch are applied."""
    last = window.last_hour
    rows = np.full((last - carry.boundary + 1, N_VARS), np.nan, np.float32)
    for source in (window.evicted, window.rows):
        for hour, row in source.items():
            if carry.boundary <= hour <= last:
                for idx, (value, _) in row.items():
                    rows[hour - carry.boundary, idx] = value
    return rows, last, window.changed_from
