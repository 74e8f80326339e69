"""Does this machine score a bundle as its training did, and does the stream equal offline scoring
on it? (``vigil bundle check``, before a bundle is rolled out: docs/operations.md, "Changing the
bundle".) Pure: the bundle and stays in, figures out.

- against the reference arrays training wrote beside the graphs (pinned in the manifest): the tree
  graph against native LightGBM's probabilities, the deterioration graph stepped hour by hour against
  the training framework's (PyTorch) on whole stays, and a window model's scored-hours graph, which
  the stream runs, against the same;
- the stream's form on real stays: every hour advanced as the worker does (``stream_step.advance``,
  the carry through its bytes), each hour's final and newest provisional scores against
  ``stay_risks``, ``vigil predict``'s;
- the drift reference the worker would watch the wards with: usable (shares, ordered bins, a null
  table), and how the checked stays read against it (informative: a site's own stays may differ).

An onnxruntime build or execution provider that rounds differently, a graph exported wrong or a
serving change that breaks the stream's equality shows here as a difference above ``TOLERANCE``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vigil.models.bundle import SteppingBundle
from vigil.models.drift import REFERENCE_FILE, DriftMonitor, DriftReference, WardDriftReport
from vigil.models.stay_features import TREE_FEATURES
from vigil.models.step_session import StepSession
from vigil.models.stepping import StayCarry, run_chains, stay_inputs
from vigil.models.stream_step import StepRequest, advance
from vigil.schemas.codes import DYNAMIC_CODES

TOLERANCE = 1e-5  # probabilities; float32 graphs against float64 references differ by ~1e-7
TREE_REFERENCE = "sepsis_diagnosis_reference.npz"
SEQUENCE_REFERENCE = "deterioration_reference.npz"


@dataclass(frozen=True)
class Check:
    name: str
    max_abs_diff: float
    rows: int  # probabilities compared

    @property
    def ok(self) -> bool:
        return bool(self.max_abs_diff <= TOLERANCE)

    def summary(self) -> dict[str, object]:
        return {"name": self.name, "max_abs_diff": float(f"{self.max_abs_diff:.3g}"), "rows": self.rows, "ok": self.ok}


def _diff(got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape:
        return float("inf")
    return float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)), initial=0.0))


def reference_checks(bundle: SteppingBundle) -> list[Check]:
    """The served graphs against the reference arrays of the bundle (none: a bundle without them)."""
    d, checks = bundle.artifacts_dir, []
    if (d / TREE_REFERENCE).exists():
        with np.load(d / TREE_REFERENCE) as ref:
            want = ref["probability"]
            checks.append(
                Check("trees against LightGBM", _diff(bundle.tree_probability(ref["features"]), want), len(want))
            )
    if (d / SEQUENCE_REFERENCE).exists():
        with np.load(d / SEQUENCE_REFERENCE) as ref:
            seq, lengths, want = ref["sequence"], ref["lengths"], ref["probability"]
        bounds = np.r_[0, np.cumsum(lengths)]
        stays = [seq[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        stepped = run_chains(bundle.step, [(None, s) for s in stays], bundle.hidden, keep_states=False)
        got = np.concatenate([p for _, p in stepped]) if stays else np.zeros(0, np.float32)
        checks.append(Check("deterioration stepped against the training framework", _diff(got, want), len(want)))
        if bundle.window_session is not None:  # the graph the stream scores a window model with
            windows = [bundle.window_probability(s[None], np.arange(len(s))[None])[0] for s in stays]
            got = np.concatenate(windows) if stays else np.zeros(0, np.float32)
            checks.append(Check("deterioration windows against the training framework", _diff(got, want), len(want)))
    return checks


def stream_checks(
    bundle: SteppingBundle, matrices: Sequence[np.ndarray], statics: Sequence[Mapping[str, float]]
) -> list[Check]:
    """Every stay advanced hour by hour in one batch, as the worker steps a ward (the carry through
    its bytes, the rows from its boundary), against the offline scores of the same rows."""
    offline = bundle.stay_risks(matrices, statics)
    want = {"combined": [r.combined for r in offline], "deterioration": [r.deterioration for r in offline]}
    runner = StepSession(bundle.step_session, bundle.hidden)
    carries = [StayCarry() for _ in matrices]
    worst = {"combined": 0.0, "deterioration": 0.0}
    compared = 0
    for hour in range(max((len(m) for m in matrices), default=0)):
        live = [i for i, m in enumerate(matrices) if hour < len(m)]
        requests = [
            StepRequest(carries[i], matrices[i][carries[i].boundary : hour + 1], hour, statics[i], hour) for i in live
        ]
        for i, out in zip(live, advance(bundle, runner, requests, explain=False), strict=True):
            carries[i] = StayCarry.from_bytes(out.carry.to_bytes())
            for scored in [*out.closed, out.current]:
                probs: dict[str, float] = {m.model: m.probability for m in scored.models}
                for name in worst:
                    # np.maximum keeps a NaN (Python's max(0.0, nan) is 0.0): a stream scoring NaN fails
                    diff = abs(probs[name] - float(want[name][i][scored.hour]))
                    worst[name] = float(np.maximum(worst[name], diff))
                compared += 1
    return [Check(f"stream {name} against vigil predict", worst[name], compared) for name in worst]


@dataclass(frozen=True)
class DriftCheck:
    """The bundle's drift reference (``training_reference.json``) as the worker would use it: its
    problems (any fails the check; a worker would watch no ward's drift) and, informative, how the
    checked stays read against it as one ward."""

    problems: list[str]
    reading: WardDriftReport | None  # None: no reference, or an unusable one

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, object]:
        r = self.reading
        return {
            "ok": self.ok,
            "problems": self.problems,
            "stays": None
            if r is None
            else {
                "patients": r.patients,
                "patient_hours": r.patient_hours,
                "max_psi": round(r.max_psi, 4),
                "threshold": round(r.threshold, 4),
                "drifted": r.drifted,
                "top": [{"input": name, "psi": round(v, 4)} for name, v in r.top],
            },
        }


def drift_check(
    bundle: SteppingBundle, matrices: Sequence[np.ndarray], statics: Sequence[Mapping[str, float]]
) -> DriftCheck:
    """Load the drift reference as the worker does (``agents.drift``: the stream's rows and tree
    features), check its sense, and read every hour of the stays against it as one ward."""
    path = bundle.artifacts_dir / REFERENCE_FILE
    if not path.exists():
        return DriftCheck(["no training reference: a worker serving this bundle watches no ward's drift"], None)
    try:
        reference = DriftReference.load(path)
        if problems := reference.problems():
            return DriftCheck(problems, None)
        monitor = DriftMonitor.for_inputs(
            reference,
            DYNAMIC_CODES,
            TREE_FEATURES,
            window_hours=max(1, sum(map(len, matrices))),
            min_hours=1,
            min_patients=1,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return DriftCheck([f"unreadable: {str(exc)[:200]}"], None)
    for i, (m, static) in enumerate(zip(matrices, statics, strict=True)):
        feats = stay_inputs(m, static).tree_features(np.arange(len(m)), static)
        monitor.observe(["stays"] * len(m), np.asarray(m, np.float32), feats, np.full(len(m), i))
    reports = monitor.reports()
    return DriftCheck([], reports[0] if reports else None)


def training_figures(bundle_dir: Path) -> dict[str, Any] | None:
    """The alert score's figures as training measured them (``metrics.json`` beside the graphs: set A's
    cross-validation and the worst case over the shift tests, docs/models.md), shown beside the check so
    that two bundles can be compared at a rollout. None: no metrics, or none for the combined score.
    Informative only: the file is not pinned by the manifest, the check does not depend on it."""
    path = Path(bundle_dir) / "metrics.json"
    try:
        combined = json.loads(path.read_text())["combined"]
        return {
            "cv": {k: combined["cv"][k] for k in ("auroc", "utility")},
            "shift_worst": {k: combined["worst"][k] for k in ("auroc", "utility")},
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None
