"""The stream's side of the stepping core (pure): which bundle the stream serves, the request a
patient's batch is scored from, and ``advance``: provisional scores of the open hours and final
scores of the hours that closed, for many patients at once.

``advance`` plans every patient of the batch at once with ``models.stepping.plan_advances`` (one
batched scan of the rows from each carry's boundary, one feature call). A recurrent model (2.0-2.4's
GRU) then steps the whole batch on the bundle's one-step graph through
``models.step_session.StepSession`` (IOBinding: states stay on the device within the batch), in two
lock-step runs: (1) the steps that are committed (hours leaving the window from ``h_boundary``; the
hours that closed, from ``h_closed``, or from ``h_boundary`` when a late event replays), (2) one
provisional step per patient through its open hour; the probability after each committed step is
the final score of that hour. A window model (the attention encoder since 2.5) carries nothing:
``stepping.score_windows`` scores every hour the batch scores in one call of its scored-hours graph,
each from the 48 hours ending there. Every scored hour of the batch goes through the tree model in
one call.

A carry is started afresh at the window's first hour (``StayCarry(boundary=b, closed=b-1)``: its
aggregates begin there) when none is stored (a patient's first batch, or state written before the
stream stepped), when it cannot belong to this window (its committed hour is not before the window's
newest), or when the window was re-anchored in this batch (every hour index moved).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vigil.models.bundle import (
    MODEL_NAMES,
    STEPPING_DIR,
    BundleDirError,
    SteppingBundle,
    load_stepping_bundle,
    model_score,
    require_stepping_bundle,
)
from vigil.models.integrity import ArtifactIntegrityError, load_manifest, verify_artifacts
from vigil.models.site_threshold import AlertThreshold, Site, choose_threshold
from vigil.models.step_session import StepSession
from vigil.models.stepping import Advance, StayCarry, own_states, plan_advances, score_windows, window_rows
from vigil.models.window import MAX_GAP_HOURS, WINDOW_HOURS, PatientWindow
from vigil.schemas.scores import ModelScore

# The most hours before the 48 that a window keeps through a model outage (``carries_without_models``):
# a week, as the state's TTL (~7 bytes a measured cell: some 20 KB of ICU rows). A longer outage folds
# them into the carry's aggregates, and the finals of the hours it closed are approximate.
MAX_UNFOLDED_HOURS = MAX_GAP_HOURS


def served_bundle_dir(configured: str | Path | None = None) -> Path:
    """The bundle the worker serves and ``vigil predict`` / ``vigil replay`` compare with: the
    operator's folder (``VIGIL_BUNDLE_DIR``, the settings' ``bundle_dir``) where one is configured,
    else the shipped ``models/artifacts/stepping``. A configured folder is checked whole here (a
    stepping manifest, every file at its pinned sha256), so that a mistyped path or a half-copied
    bundle is the operator's one line before any work, never a worker serving rule scores instead."""
    if configured is None:
        return STEPPING_DIR
    d = Path(configured)
    try:
        require_stepping_bundle(
            d,
            "VIGIL_BUNDLE_DIR=",
            "point it at such a folder, or unset it to serve the shipped models/artifacts/stepping",
        )
        verify_artifacts(load_manifest(d), d)
    except ArtifactIntegrityError as exc:  # its message says what to do with the bundle
        raise BundleDirError(
            f"VIGIL_BUNDLE_DIR={d}: the bundle is damaged: {exc}, or unset VIGIL_BUNDLE_DIR to serve the shipped one"
        ) from exc
    except (OSError, ValueError, KeyError) as exc:
        raise BundleDirError(
            f"VIGIL_BUNDLE_DIR={d}: the bundle is damaged ({exc}): copy it again from what `vigil train` "
            "wrote, or unset VIGIL_BUNDLE_DIR to serve the shipped bundle"
        ) from exc
    return d


def served_alert_threshold(site: Site | None = None, artifacts_dir: str | Path | None = None) -> AlertThreshold | None:
    """A bundle's alert threshold for a site from its manifest alone (the served bundle unless
    ``artifacts_dir``): the check `vigil worker` and `vigil predict` make before any work, so a site
    setting the bundle cannot serve stops them with one line. None: no bundle there."""
    d = Path(artifacts_dir) if artifacts_dir is not None else served_bundle_dir()
    if not (d / "manifest.json").exists():
        return None
    return choose_threshold(load_manifest(d)["models"]["combined"], site)


def load_served_bundle(
    artifacts_dir: str | Path | None = None,
    *,
    intra_op_threads: int | None = None,
    prefer_gpu: bool = True,
    site: Site | None = None,
) -> SteppingBundle:
    """The served bundle at the site's alert threshold (``SteppingBundle.at_site``; the settings'
    ``site`` block in the worker, the same settings or flags in ``vigil predict``)."""
    bundle = load_stepping_bundle(
        artifacts_dir or served_bundle_dir(), intra_op_threads=intra_op_threads, prefer_gpu=prefer_gpu
    )
    return bundle.at_site(site)


@dataclass(frozen=True)
class StepRequest:
    """Score one patient at its newest hour."""

    carry: StayCarry
    rows: np.ndarray  # hours carry.boundary .. last_hour, [T, N_VARS]
    last_hour: int
    static: Mapping[str, float]
    changed_from: int | None


@dataclass(frozen=True)
class HourScore:
    hour: int
    features: np.ndarray  # tree features of the hour
    models: list[ModelScore]


@dataclass(frozen=True)
class StepOutcome:
    current: HourScore  # the newest hour: provisional until the hour closes
    closed: list[HourScore]  # hours that closed in this batch, oldest first: final
    closed_rows: np.ndarray  # their hourly rows [len(closed), N_VARS]
    carry: StayCarry  # to save beside the window
    # the carried states were another sequence model's (or not finite) and were dropped (``stepping.own_states``):
    # this patient's deterioration score was replayed from the window's first hour
    restarted: bool = False
    # the models whose probability was not a number in one of its hours, left out there (``left_out``)
    not_a_number: tuple[str, ...] = ()


def fresh_carry(window: PatientWindow) -> StayCarry:
    """A carry from the stay's first hour when the window still holds it (no hour has left it), as
    ``vigil predict`` reads a stay from its first measured row (``models.hour_zero``): hour 0 holds
    the stay's first measurement, and no hour before it is scored (``step_request``). Else from the
    window's oldest hour."""
    if window.last_hour < WINDOW_HOURS:
        return StayCarry(boundary=0, closed=-1)
    start = min([*window.rows, *window.evicted, window.last_hour])
    return StayCarry(boundary=start, closed=start - 1)


def carry_fits(window: PatientWindow, carry: StayCarry) -> bool:
    return carry.boundary <= window.last_hour and carry.closed < window.last_hour


def step_request(window: PatientWindow, carry: StayCarry | None, anchor_before: int | None) -> StepRequest | None:
    """What to score for this patient after the batch's events were applied to ``window`` (None:
    no measurement yet, e.g. only a treatment, an assessment or the age and sex were recorded: hour 0
    is the first measurement's, and training never saw an hour before it, ``models.hour_zero``; the
    patient's score then carries the rules alone). ``anchor_before``: the window's anchor as loaded."""
    if window.last_hour < 0 or window.anchor_s is None or window.awaiting_first_measurement():
        return None
    reanchored = anchor_before is not None and anchor_before != window.anchor_s
    if carry is None or reanchored or not carry_fits(window, carry):
        carry = fresh_carry(window)
    rows, last, changed = window_rows(window, carry)
    return StepRequest(carry, rows, last, window.statics(), changed)


def plan_requests(
    requests: Sequence[StepRequest], window: int | None = None, columns: np.ndarray | None = None
) -> list[Advance]:
    """The batch's plans: every request through one ``plan_advances`` call (``window``: the hours of
    the bundle's window model, ``SteppingBundle.window_model``; None for a recurrent model;
    ``columns``: the sequence inputs it reads, ``SteppingBundle.sequence_columns``)."""
    return plan_advances(
        [r.carry for r in requests],
        [r.rows for r in requests],
        [r.last_hour for r in requests],
        [r.static for r in requests],
        [r.changed_from for r in requests],
        window,
        columns,
    )


def carries_without_models(
    requests: Sequence[StepRequest],
    window: int | None = None,
    columns: np.ndarray | None = None,
    windows: Sequence[PatientWindow] | None = None,
) -> list[StayCarry]:
    """The carries to save beside the advanced windows when the models failed on a batch: nothing
    marked final that was not, and no hour's rows lost (the stored carry saved beside a window that
    had let them go lost those hours for the rest of the stay: a count since admission one short on
    every later hour, 227 of 229 hours off by up to 0.02).

    With ``windows`` (each request's window, as it will be saved): the carry the batch was planned
    from, kept (``h_closed`` dropped when the batch changed an hour it had closed, so that a recurrent
    model replays from ``h_boundary``, as ``models.stays.holdable_carry``), and each window keeps the
    rows that left it from the carry's boundary on (``PatientWindow.keep_unfolded``, mutated): the next
    batch the models score finalizes the hours that closed meanwhile from every row and state they
    read, exactly ``vigil predict``'s scores. A carry that cannot be kept so (its window would then
    hold more than ``MAX_UNFOLDED_HOURS`` hours before the 48) folds, as below.

    Without: the hours that left the window folded into the aggregates (``plan_advances`` needs no
    model), recurrent states dropped (a recurrent model replays from the boundary). The hours that
    closed in such batches are finalized by the next scored batch, but each of them reads hours
    before it that only the folded aggregates hold (the attention encoder: 47; the trees: 23):
    their finals are approximate (the deterioration score of a 31-hour outage up to 0.056 from
    ``vigil predict``'s); so are, with a recurrent model, the scores that follow, until the stay ends.
    Folding less does not help: the window no longer holds those rows."""
    kept: dict[int, StayCarry] = {}
    if windows is not None:
        for i, request in enumerate(requests):
            if request.last_hour - request.carry.boundary < WINDOW_HOURS + MAX_UNFOLDED_HOURS:
                kept[i] = _kept_carry(request)
    folding = [i for i in range(len(requests)) if i not in kept]
    plans = dict(zip(folding, plan_requests([requests[i] for i in folding], window, columns), strict=True))
    out = []
    for i, request in enumerate(requests):
        if i in kept:
            out.append(kept[i])
            continue
        plan = plans[i]
        closed = max(request.carry.closed, plan.new_boundary - 1)  # a recurrent model replays from the boundary
        out.append(StayCarry(plan.new_boundary, plan.new_agg, None, closed, None))
    if windows is not None:  # after every carry is known: a failure above leaves the windows as they were
        for w, carry in zip(windows, out, strict=True):
            w.keep_unfolded(carry.boundary)
    return out


def _kept_carry(request: StepRequest) -> StayCarry:
    """``request``'s carry, to be planned from again with the rows it has not folded: without its
    closed state when the batch changed an hour it had closed (the next batch's ``changed_from`` will
    not say so), so that a recurrent model steps again from ``h_boundary`` (``stepping._replays``)."""
    carry = request.carry
    if request.changed_from is not None and request.changed_from <= carry.closed:
        return dataclasses.replace(carry, h_closed=None)
    return carry


def advance(
    bundle: SteppingBundle, runner: StepSession, requests: Sequence[StepRequest], explain: bool = True
) -> list[StepOutcome]:
    """Score every patient at its newest hour and finalize the hours that closed (module docstring)."""
    if not requests:
        return []
    window = bundle.window_model
    if window is not None:
        plans = plan_requests(requests, window.hours, bundle.sequence_columns)
        probs = score_windows(window, plans)
        return _outcomes(bundle, requests, plans, probs, [p.carry(None, None) for p in plans], explain)
    owned = [own_states(r.carry, bundle.state_tag, bundle.hidden) for r in requests]
    requests = [dataclasses.replace(r, carry=c) for r, (c, _) in zip(requests, owned, strict=True)]
    plans = plan_requests(requests, None, bundle.sequence_columns)
    b = len(plans)
    committed = runner.run_chains(
        [p.boundary_chain for p in plans] + [(p.closed_chain[0], p.closed_chain[1][: p.commit_steps]) for p in plans]
    )
    provisional = runner.run_chains(
        [(committed[b + i].state, p.closed_chain[1][p.commit_steps :]) for i, p in enumerate(plans)]
    )
    probs, carries = [], []
    for i, (req, plan) in enumerate(zip(requests, plans, strict=True)):
        chain_start = plan.hour - len(plan.closed_chain[1]) + 1  # hour of the closed chain's first step
        closed = [committed[b + i].probabilities[h - chain_start] for h in closing_hours(req.carry, plan.hour)]
        probs.append(np.array([*closed, provisional[i].probabilities[-1]], np.float32))
        h_b = committed[i].state if len(plan.boundary_chain[1]) else plan.boundary_chain[0]
        h_c = committed[b + i].state if plan.commit_steps else plan.closed_chain[0]
        carries.append(dataclasses.replace(plan.carry(h_b, h_c), model=bundle.state_tag))  # as Advance.finish
    outcomes = _outcomes(bundle, requests, plans, probs, carries, explain)
    return [dataclasses.replace(o, restarted=r) for o, (_, r) in zip(outcomes, owned, strict=True)]


def closing_hours(carry: StayCarry, hour: int) -> list[int]:
    """The hours an advance to ``hour`` finalizes: every hour before it not finalized before."""
    return list(range(max(carry.closed + 1, carry.boundary), hour))


def closed_span(anchor_s: int | None, carry: StayCarry | None) -> tuple[int, int] | None:
    """The hours a stored carry has finalized, as clock times [start, end) in epoch s: from the
    window's hour 0 to the hour after the carry's last closed one, in the anchor as stored (None: no
    such carry). Anchors fall on the clock's hours, so an hour is the same whichever anchor reads it."""
    if anchor_s is None or carry is None:
        return None
    return anchor_s, anchor_s + (carry.closed + 1) * 3600


def first_closings(
    closed: Sequence[HourScore], anchor_s: int | None, before: tuple[int, int] | None
) -> list[HourScore]:
    """The hours of an outcome's ``closed`` that close for the first time: not in ``before``
    (``closed_span`` of the stay as stored). An advance from a fresh carry finalizes every hour of the
    window again: after an observation older than the stay's first (the window re-anchored: the hours
    before the old hour 0 are new) or a cancelled discharge that folds the next stay back; their final
    scores go out again, corrected, but a count of patient-hours must not take them twice."""
    if before is None or anchor_s is None:
        return list(closed)
    start, end = before
    return [h for h in closed if not start <= anchor_s + h.hour * 3600 < end]


def _outcomes(
    bundle: SteppingBundle,
    requests: Sequence[StepRequest],
    plans: Sequence[Advance],
    probs: Sequence[np.ndarray],
    carries: Sequence[StayCarry],
    explain: bool,
) -> list[StepOutcome]:
    """Every scored hour of the batch (per plan: the hours that closed, then the open one, with the
    sequence model's probabilities ``probs``) through the trees in one call, combined and explained."""
    feats: list[np.ndarray] = []
    p_seq: list[float] = []
    closed_hours: list[list[int]] = []
    for req, plan, p in zip(requests, plans, probs, strict=True):
        hours = closing_hours(req.carry, plan.hour)
        assert plan.closed_features is not None and len(plan.closed_features) == len(hours) == len(p) - 1
        feats.extend([*plan.closed_features, plan.features])
        p_seq.extend(p.tolist())
        closed_hours.append(hours)
    x = np.asarray(feats, np.float32)
    p_tree = bundle.tree_probability(x)
    comb = bundle.combine(p_tree, np.asarray(p_seq, np.float32))
    tops = bundle.explain(x) if explain else [[] for _ in feats]
    meta = bundle.manifest["models"]
    scores = [
        [
            score
            for score in (
                model_score(meta["sepsis_diagnosis"], "sepsis_diagnosis", float(p_tree[k]), tops[k]),
                model_score(meta["deterioration"], "deterioration", float(p_seq[k]), []),
                model_score(meta["combined"], "combined", float(comb[k]), tops[k]),
            )
            if score is not None  # not a number: left out of this hour (``model_score``)
        ]
        for k in range(len(feats))
    ]
    out, at = [], 0
    for req, plan, hours, carry in zip(requests, plans, closed_hours, carries, strict=True):
        scored = [HourScore(h, feats[at + k], scores[at + k]) for k, h in enumerate([*hours, plan.hour])]
        at += len(scored)
        rows = req.rows[[h - req.carry.boundary for h in hours]]
        out.append(StepOutcome(scored[-1], scored[:-1], rows, carry, not_a_number=left_out(scored)))
    return out


def left_out(scored: Sequence[HourScore]) -> tuple[str, ...]:
    """The models whose probability was not a number in any of a patient's scored hours (their
    scores left out of those hours), by name, in the bundle's order."""
    given = [{m.model for m in hour.models} for hour in scored]
    return tuple(name for name in MODEL_NAMES if any(name not in g for g in given))
