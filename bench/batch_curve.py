"""The batch-size curve of ``vigil bench``: per-patient cost of the served stepping bundle at each
batch size, in-process on the CPU: the deployed ONNX models alone and the whole scoring call as the
stream makes it (``models.stream_step.advance``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vigil.infra.allocator import keep_freed_memory
from vigil.infra.replay import Stay
from vigil.infra.settings import get_settings

BATCH_CURVE_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def steady_requests(stays: list[Stay], n: int) -> tuple[Any, Any, list[Any]]:
    """(bundle, runner, one request per patient): each stay stepped hour by hour to its second-last
    hour, then asked for its last hour (that hour's provisional score and the previous hour's
    final): what the stream computes for a patient on every new hour."""
    from vigil.models.step_session import StepSession
    from vigil.models.stepping import StayCarry
    from vigil.models.stream_step import StepRequest, advance, load_served_bundle, served_bundle_dir

    settings = get_settings()  # the bundle the bench's workers serve (VIGIL_BUNDLE_DIR or the shipped one)
    bundle = load_served_bundle(
        served_bundle_dir(settings.bundle_dir), intra_op_threads=settings.batch.intra_op_threads
    )
    runner = StepSession(bundle.step_session, bundle.hidden)
    stays = [s for s in stays if len(s.matrix) >= 2]
    carries = [StayCarry() for _ in stays]
    for hour in range(max((len(s.matrix) for s in stays), default=1) - 1):  # every stay in lock step
        live = [i for i, s in enumerate(stays) if hour < len(s.matrix) - 1]
        batch = [
            StepRequest(carries[i], stays[i].matrix[carries[i].boundary : hour + 1], hour, stays[i].static, None)
            for i in live
        ]
        for i, out in zip(live, advance(bundle, runner, batch), strict=True):
            carries[i] = out.carry
    requests = [
        StepRequest(c, s.matrix[c.boundary :], len(s.matrix) - 1, s.static, None)
        for s, c in zip(stays, carries, strict=True)
    ]
    while len(requests) < n:
        requests += requests
    return bundle, runner, requests[:n]


def batch_curve(stays: list[Stay], reps_target_s: float = 0.4) -> dict[str, Any]:
    """Per-patient cost at each batch size (in-process, CPU) of the stepping bundle the worker serves:
    the deployed ONNX models alone (``models``: the tree model on one hour's features and the
    sequence model on prepared inputs: one step of a recurrent graph, or one window of a window
    model such as the attention encoder) and the whole scoring call as the stream makes it
    (``end_to_end``: ``models.stream_step.advance``: scan + features + steps + trees + explanations)."""
    from vigil.models.stepping import score_windows
    from vigil.models.stream_step import advance, plan_requests

    keep_freed_memory()  # as the worker does (infra.allocator)
    bundle, runner, requests = steady_requests(stays, max(BATCH_CURVE_SIZES))
    explain = get_settings().batch.explain != "none"  # what the stream computes per score
    window = bundle.window_model
    plans = plan_requests(requests, window.hours if window else None)
    feats = np.stack([p.features for p in plans]).astype(np.float32)
    x = np.stack([p.closed_chain[1][-1] for p in plans]).astype(np.float32)
    h = np.stack([np.zeros(bundle.hidden) if p.closed_chain[0] is None else p.closed_chain[0] for p in plans])
    h = h.astype(np.float32)

    def per_patient_us(fn: Callable[[], object], b: int) -> float:
        """Median of five timed blocks (other processes share the machine: one slow block, e.g.
        a broker's GC pause, moves a median less than a mean)."""
        fn()  # warm-up
        blocks = []
        for _ in range(5):
            reps, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < reps_target_s / 5 or reps < 3:
                fn()
                reps += 1
            blocks.append((time.perf_counter() - t0) / (reps * b) * 1e6)
        return float(np.median(blocks))

    models_curve: dict[int, float] = {}
    step_curve: dict[int, float] = {}
    tree_curve: dict[int, float] = {}
    contrib_curve: dict[int, float] = {}  # the explanation graph (not a model: it explains the trees)
    end_to_end: dict[int, float] = {}
    for b in BATCH_CURVE_SIZES:

        def models_only(b: int = b) -> object:
            return bundle.tree_probability(feats[:b]), step_only(b)

        def step_only(b: int = b) -> object:
            return score_windows(window, plans[:b]) if window else bundle.step(x[:b], h[:b])

        def tree_only(b: int = b) -> object:
            return bundle.tree_probability(feats[:b])

        def contrib_only(b: int = b) -> object:
            return bundle.contributions(feats[:b])

        step_curve[b] = per_patient_us(step_only, b)
        tree_curve[b] = per_patient_us(tree_only, b)
        contrib_curve[b] = per_patient_us(contrib_only, b)

        def whole(b: int = b) -> object:
            return advance(bundle, runner, requests[:b], explain=explain)

        models_curve[b] = per_patient_us(models_only, b)
        end_to_end[b] = per_patient_us(whole, b)
    return {
        "us_per_sample": models_curve,
        "step_us_per_sample": step_curve,
        "tree_us_per_sample": tree_curve,
        "contrib_us_per_sample": contrib_curve,
        "end_to_end_us_per_sample": end_to_end,
        "batch_speedup": models_curve[1] / models_curve[64],
        "end_to_end_batch_speedup": end_to_end[1] / end_to_end[64],
        "score_us_per_patient": end_to_end[64],
        "providers": runner.providers,
        "bundle": bundle.version,
    }


def plot_curve(
    curve: dict[int, float],
    end_to_end: dict[int, float],
    path: Path,
    per_model: dict[str, dict[int, float]] | None = None,
) -> None:
    """The curve as ``vigil bench`` draws it; ``per_model``: one more line per session (label: curve)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(curve)
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.plot(sizes, [curve[s] for s in sizes], marker="o", label="ONNX models (both sessions)")
    ax.plot(sizes, [end_to_end[s] for s in sizes], marker="s", label="features + models + explanations")
    for label, points in (per_model or {}).items():
        ax.plot(sizes, [points[s] for s in sizes], marker=".", linestyle="--", label=label)
    ax.legend(fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size (patients)")
    ax.set_ylabel("µs per patient")
    ax.set_title(f"ONNX Runtime CPU, {os.cpu_count()} cores: per-patient inference cost")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def no_curve(why: str) -> dict[str, Any]:
    return {
        "us_per_sample": {},
        "end_to_end_us_per_sample": {},
        "batch_speedup": None,
        "end_to_end_batch_speedup": None,
        "error": why[:200],
    }


def batch_curve_or_why_not(stays: list[Stay]) -> dict[str, Any]:
    try:
        return batch_curve(stays)
    except Exception as exc:  # no model artifacts: say so rather than invent a number
        return no_curve(f"{type(exc).__name__}: {exc}")
