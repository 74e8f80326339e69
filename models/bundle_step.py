"""The stepping bundle: the models the stream and ``vigil predict`` serve through the stepping core
(``models.stepping``; issue 13).

A bundle directory holds ``manifest.json`` with ``"serving": "stepping"`` and

- ``models.sepsis_diagnosis``: a tree model (ONNX, input [B, len(tree_features)], output the
  probability, [B] or [B, 2] with the positive class last) and optionally its flat tree table
  (``contributions_file``, ``models.train.trees.tree_table``) for per-score explanations;
- ``models.deterioration``: the recurrent model's one-step graph ``(x, h) -> (h', p)``
  (``models.step_session``), hidden size ``hidden``;
- ``models.combined``: ``combiner`` = ``"mean"`` or ``{"kind": "logistic", "coef": [a, b],
  "intercept": c}`` on the two logits, optionally ``"calibration": {"x": [...], "y": [...]}``
  (isotonic steps, interpolated); each model has ``version`` and ``threshold``;
- ``tree_features`` / ``sequence_inputs``: must equal ``models.stay_features``' lists (refused otherwise);
- ``drift_reference`` (optional): ``models.drift``'s training profile;
- ``files``: sha256 of every file (checked on load, ``ArtifactIntegrityError``).

Which directory: ``models/artifacts/`` when its manifest says ``"serving": "stepping"``, else the
STOP-GAP bundle in ``models/artifacts/stopgap_stepping/`` (``models.train.stopgap_step``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vigil.models.drift import DriftReference
from vigil.models.registry import (
    ARTIFACTS_DIR,
    TOP_K,
    ArtifactIntegrityError,
    StayRisk,
    tree_contributions,
    verify_artifacts,
)
from vigil.models.stay_features import SEQUENCE_INPUTS, TREE_FEATURES
from vigil.models.step_session import StepSession
from vigil.models.stepping import StayCarry, plan_advance, stay_inputs
from vigil.schemas.scores import FeatureContribution, ModelScore

STEPPING = "stepping"
STOPGAP_DIR = ARTIFACTS_DIR / "stopgap_stepping"


def stepping_dir(artifacts_dir: str | Path | None = None) -> Path:
    """The bundle to serve: the one given, the shipped artifacts if stepping, else the stop-gap."""
    if artifacts_dir is not None:
        return Path(artifacts_dir)
    shipped = ARTIFACTS_DIR / "manifest.json"
    if shipped.exists() and json.loads(shipped.read_text()).get("serving") == STEPPING:
        return ARTIFACTS_DIR
    return STOPGAP_DIR


@dataclass(frozen=True)
class StepRequest:
    """Score one patient at its newest hour (``models.stepping.window_rows`` gives rows/last/changed)."""

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
    closed: list[HourScore]  # hours that closed in this step, oldest first: final
    closed_rows: np.ndarray  # their hourly rows [len(closed), N_VARS]
    carry: StayCarry  # to save beside the window


class StepBundle:
    def __init__(
        self,
        manifest: dict[str, Any],
        artifacts_dir: Path,
        tree_session: Any,
        step: StepSession,
        tree_table: dict[str, np.ndarray] | None,
        reference: DriftReference | None,
    ) -> None:
        self.manifest = manifest
        self.artifacts_dir = artifacts_dir
        self.tree_session = tree_session
        self.step = step
        self.tree_table = tree_table
        self.reference = reference
        self._tree_input = tree_session.get_inputs()[0].name
        self._combiner = manifest["models"]["combined"].get("combiner", "mean")
        self._calibration = manifest["models"]["combined"].get("calibration")

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def hidden(self) -> int:
        return self.step.hidden

    @property
    def combined_threshold(self) -> float:
        return float(self.manifest["models"]["combined"]["threshold"])

    @property
    def providers(self) -> list[str]:
        return self.step.providers

    # ---------------------------------------------------------------- probabilities
    def diagnosis_probability(self, features: np.ndarray) -> np.ndarray:
        if not len(features):
            return np.zeros(0, np.float32)
        out = self.tree_session.run(None, {self._tree_input: features.astype(np.float32)})
        p = np.asarray(out[-1], np.float32)  # LightGBM's converter: (label, probabilities [B, 2])
        return p[:, -1] if p.ndim == 2 else p.reshape(-1)

    def combine(self, p_diag: np.ndarray, p_seq: np.ndarray) -> np.ndarray:
        if self._combiner == "mean":
            p = 0.5 * (p_diag + p_seq)
        else:
            coef, intercept = self._combiner["coef"], self._combiner["intercept"]
            z = coef[0] * _logit(p_diag) + coef[1] * _logit(p_seq) + intercept
            p = 1.0 / (1.0 + np.exp(-z))
        if self._calibration:
            p = np.interp(p, self._calibration["x"], self._calibration["y"])
        return np.asarray(p, np.float32)

    # ---------------------------------------------------------------- scores with explanations
    def model_scores(self, features: np.ndarray, p_seq: np.ndarray, explain: bool = True) -> list[list[ModelScore]]:
        """The three ModelScores per row (tree contributions as explanations when ``explain``)."""
        p_diag = self.diagnosis_probability(features)
        comb = self.combine(p_diag, p_seq)
        tops = self._tree_tops(features) if explain and self.tree_table is not None else [[] for _ in features]
        out = []
        for i, top in enumerate(tops):
            scale = 0.5 * p_diag[i] * (1 - p_diag[i])  # log-odds -> probability units of the mean
            comb_top = [fc.model_copy(update={"contribution": fc.contribution * float(scale)}) for fc in top]
            out.append(
                [
                    self._model_score("sepsis_diagnosis", float(p_diag[i]), top),
                    self._model_score("deterioration", float(p_seq[i]), []),
                    self._model_score("combined", float(comb[i]), comb_top),
                ]
            )
        return out

    def _model_score(self, name: str, p: float, top: list[FeatureContribution]) -> ModelScore:
        meta = self.manifest["models"][name]
        thr = float(meta["threshold"])
        p = min(max(p, 0.0), 1.0)
        return ModelScore(
            model=name,  # type: ignore[arg-type]
            version=str(meta["version"]),
            probability=p,
            threshold=thr,
            positive=p >= thr,
            top_features=top,
        )

    def _tree_tops(self, features: np.ndarray) -> list[list[FeatureContribution]]:
        assert self.tree_table is not None
        contrib, _ = tree_contributions(self.tree_table, features)
        order = np.argsort(-np.abs(contrib), axis=1)[:, :TOP_K]
        picked = np.take_along_axis(contrib, order, 1)
        values = np.take_along_axis(features, order, 1)
        return [
            [
                FeatureContribution(
                    feature=TREE_FEATURES[j], value=None if np.isnan(v) else float(v), contribution=float(c)
                )
                for j, c, v in zip(order[i].tolist(), picked[i].tolist(), values[i].tolist(), strict=True)
                if c != 0.0
            ]
            for i in range(len(features))
        ]

    # ---------------------------------------------------------------- the stream
    def advance(self, requests: Sequence[StepRequest], explain: bool = True) -> list[StepOutcome]:
        """Score every patient at its newest hour and finalize the hours that closed: one scan per
        patient, the recurrent steps of the whole batch in lock step (boundary and committed steps,
        then the provisional step), one tree-model call for every scored hour of the batch."""
        if not requests:
            return []
        plans = [plan_advance(r.carry, r.rows, r.last_hour, r.static, r.changed_from) for r in requests]
        b = len(plans)
        committed = self.step.run_chains(
            [p.boundary_chain for p in plans]
            + [(p.closed_chain[0], p.closed_chain[1][: p.commit_steps]) for p in plans]
        )
        provisional = self.step.run_chains(
            [(committed[b + i].state, p.closed_chain[1][p.commit_steps :]) for i, p in enumerate(plans)]
        )
        rows_feats: list[np.ndarray] = []
        rows_seq: list[float] = []
        spans: list[int] = []
        closed_hours: list[list[int]] = []
        for i, (req, plan) in enumerate(zip(requests, plans, strict=True)):
            chain_start = plan.hour - len(plan.closed_chain[1]) + 1  # hour of the closed chain's first step
            first_new = max(req.carry.closed + 1, chain_start)  # hours closing now (not finalized before)
            hours = list(range(first_new, plan.hour))
            assert plan.inputs is not None
            feats = plan.inputs.tree_features([*hours, plan.hour], req.static) if hours else plan.features[None]
            seq = [committed[b + i].probabilities[h - chain_start] for h in hours]
            seq.append(provisional[i].probabilities[-1])
            spans.append(len(rows_feats))
            rows_feats.extend(feats)
            rows_seq.extend(seq)
            closed_hours.append(hours)
        scores = self.model_scores(np.asarray(rows_feats, np.float32), np.asarray(rows_seq, np.float32), explain)
        out = []
        for i, (req, plan) in enumerate(zip(requests, plans, strict=True)):
            at, hours = spans[i], closed_hours[i]
            finals = [HourScore(h, rows_feats[at + k], scores[at + k]) for k, h in enumerate(hours)]
            current = HourScore(plan.hour, rows_feats[at + len(hours)], scores[at + len(hours)])
            h_b = committed[i].state if len(plan.boundary_chain[1]) else plan.boundary_chain[0]
            h_c = committed[b + i].state if plan.commit_steps else plan.closed_chain[0]
            carry = StayCarry(plan.new_boundary, plan.new_agg, h_b, plan.hour - 1, h_c)  # as Advance.finish
            rows = req.rows[[h - req.carry.boundary for h in hours]] if hours else req.rows[:0]
            out.append(StepOutcome(current, finals, rows, carry))
        return out

    # ---------------------------------------------------------------- offline (vigil predict)
    def stay_risks(self, matrices: Sequence[np.ndarray], statics: Sequence[Mapping[str, float]]) -> list[StayRisk]:
        """Every hour of every stay, stepped from admission exactly as the stream steps it."""
        inputs = [stay_inputs(m, s) for m, s in zip(matrices, statics, strict=True)]
        if not sum(len(m) for m in matrices):
            return [StayRisk(*(np.zeros(0, np.float32),) * 3) for _ in matrices]
        feats = np.concatenate(
            [i.tree_features(np.arange(len(m)), s) for i, m, s in zip(inputs, matrices, statics, strict=True)]
        )
        chains = self.step.run_chains([(None, i.sequence) for i in inputs])
        p_seq = np.concatenate([c.probabilities for c in chains]).astype(np.float32)
        p_diag = self.diagnosis_probability(feats)
        comb = self.combine(p_diag, p_seq)
        bounds = np.r_[0, np.cumsum([len(m) for m in matrices])]
        return [StayRisk(p_diag[a:z], p_seq[a:z], comb[a:z]) for a, z in zip(bounds[:-1], bounds[1:], strict=True)]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def load_step_bundle(
    artifacts_dir: str | Path | None = None, *, intra_op_threads: int | None = None, prefer_gpu: bool = True
) -> StepBundle:
    """Open the stepping bundle after checking every file's sha256 and the input lists."""
    from vigil.models.session import create_session

    d = stepping_dir(artifacts_dir)
    manifest = json.loads((d / "manifest.json").read_text())
    if manifest.get("serving") != STEPPING:
        raise ArtifactIntegrityError(f"{d}: not a stepping bundle (manifest 'serving' != 'stepping')")
    verify_artifacts(manifest, d)
    if list(manifest["tree_features"]) != TREE_FEATURES:
        raise ArtifactIntegrityError("manifest tree_features differ from models.stay_features.TREE_FEATURES")
    if list(manifest["sequence_inputs"]) != SEQUENCE_INPUTS:
        raise ArtifactIntegrityError("manifest sequence_inputs differ from models.stay_features.SEQUENCE_INPUTS")
    models = manifest["models"]
    table = None
    if models["sepsis_diagnosis"].get("contributions_file"):
        with np.load(d / models["sepsis_diagnosis"]["contributions_file"]) as z:
            table = {k: z[k] for k in z.files}
    reference = DriftReference.load(d / manifest["drift_reference"]) if manifest.get("drift_reference") else None

    def session(name: str) -> Any:
        return create_session(d / models[name]["file"], intra_op_threads=intra_op_threads, prefer_gpu=prefer_gpu)

    step = StepSession(session("deterioration"), int(manifest["hidden"]))
    return StepBundle(manifest, d, session("sepsis_diagnosis"), step, table, reference)
