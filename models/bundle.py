"""The stepping bundle (``models/artifacts/stepping/``): whole-stay trees + a sequence model stepped
hour by hour, stacked and calibrated into one risk (serving side: numpy + onnxruntime only).

- ``sepsis_diagnosis``: LightGBM on ``stay_features.TREE_FEATURES`` (utility-weighted targets);
- ``deterioration``: the sequence model's one-step graph (inputs ``x`` [B, F] and ``h`` [B, H];
  outputs ``h_next`` and ``probability``), stepped by ``models.stepping``. The manifest's ``kind``
  says which: ``gru-step`` (2.0-2.4, ``h`` the GRU's state, carried between batches) or
  ``attention-step`` (since 2.5: a causal attention encoder over the last 48 hours, ``h`` its
  key/value cache). Offline both step through whole stays; the stream scores the attention encoder
  from whole windows with its scored-hours graph (``window_model``), nothing carried;
- ``combined``: logistic stacker on both models' log-odds, fitted on out-of-fold predictions, then
  isotonic calibration with a sliver of the stacked score kept (knots and ``rank_keep`` in the
  manifest; ``calibrated_risk``, the function training chose every threshold on): the one risk
  alerts use. Since 2.1 the stored sequence weight is 0 (the sequence model cost the alerts'
  threshold transfer across ICU units; docs/models.md).

``stay_risks`` scores whole stays offline (``vigil predict``); the stream scores the newest hour
of many patients from their carries with ``models.stream_step.advance``, through this bundle's
sessions, ``tree_probability``, ``combine`` and ``explain``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from vigil.models.integrity import (
    ARTIFACTS_DIR,
    COPY_AGAIN,
    OTHER_VERSION,
    ArtifactIntegrityError,
    load_manifest,
    pinned_file,
    verify_artifacts,
)
from vigil.models.site_threshold import AlertThreshold, Site, choose_threshold
from vigil.models.stay_features import MISSINGNESS_FEATURES, N_SEQUENCE_INPUTS, SEQUENCE_INPUTS, TREE_FEATURES
from vigil.models.stepping import WindowModel, run_chains, state_tag, stay_inputs
from vigil.models.tree_explain import tree_contributions
from vigil.schemas.errors import UserError
from vigil.schemas.scores import FeatureContribution, ModelScore

STEPPING_DIR = ARTIFACTS_DIR / "stepping"
FORMAT = "stepping-v2"
TOP_K = 5
ModelName = Literal["sepsis_diagnosis", "deterioration", "combined"]
MODEL_NAMES: tuple[ModelName, ...] = ("sepsis_diagnosis", "deterioration", "combined")
MEASUREMENT_PATTERN = "measurement_pattern"  # the grouped missingness features in explanations
# the deterioration model's one-step graphs this code serves, by the manifest's ``kind``
SEQUENCE_KINDS = {"attention-step": "causal attention encoder", "gru-step": "GRU"}
_PATTERN = np.array([n in MISSINGNESS_FEATURES for n in TREE_FEATURES])
# The tree graphs run on one onnxruntime thread on every path (the worker, ``vigil predict``, ``vigil
# replay``, ``vigil bundle check``): with several, the sum over the trees is split between threads in
# an order that depends on the thread count and on the batch's size, and float32 sums in another order
# differ by ~3e-7, which the isotonic calibration's steps made up to 6e-4 of combined risk between
# the stream (one thread, small batches) and ``vigil predict`` (every core, 256 stays a call). On one
# thread each row's trees are summed in the graph's order: the same bits alone or in any batch.
TREE_THREADS = 1


def sequence_columns(names: Sequence[str]) -> np.ndarray | None:
    """Indices of a manifest's sequence inputs in ``SEQUENCE_INPUTS`` (None: all of them, in order).
    Names the code does not compute, or out of its order, are refused."""
    names = list(names)
    if names == SEQUENCE_INPUTS:
        return None
    unknown = [n for n in names if n not in SEQUENCE_INPUTS]
    if unknown:
        raise ArtifactIntegrityError(f"sequence inputs this code does not compute: {unknown[:5]}: {OTHER_VERSION}")
    cols = np.array([SEQUENCE_INPUTS.index(n) for n in names], np.int64)
    if len(cols) and not np.all(np.diff(cols) > 0):
        raise ArtifactIntegrityError(f"manifest sequence inputs are not in models.stay_features order: {OTHER_VERSION}")
    return cols


def _logit(p: np.ndarray) -> np.ndarray:
    """Log-odds, clipped to 1e-6 from 0 and 1; NaN where ``p`` is not finite (clipped, an infinity
    from a graph would give the combined risk a number, published as if the model had scored)."""
    p = np.asarray(p, np.float64)
    clipped = np.clip(p, 1e-6, 1 - 1e-6)
    return np.where(np.isfinite(p), np.log(clipped / (1 - clipped)), np.nan)


def stacked_risk(stacker: Mapping[str, Any], p_tree: np.ndarray, p_seq: np.ndarray) -> np.ndarray:
    """The logistic stacker on both models' log-odds (the manifest's ``stacker``), in float64. A model
    of weight 0 (the sequence model since 2.1) is left out, not multiplied by 0: 0 * NaN is NaN, and
    a NaN from a model the risk does not use made every patient of the batch rules-only."""
    z = stacker["tree"] * _logit(p_tree)
    if stacker["sequence"] != 0:  # + 0 * logit: the same sum, bit for bit, when the logit is finite
        z = z + stacker["sequence"] * _logit(p_seq)
    z = z + stacker["bias"]
    return 1.0 / (1.0 + np.exp(-z))


def calibrated_risk(stacked: np.ndarray, knots_x: Any, knots_y: Any, rank_keep: float) -> np.ndarray:
    """The isotonic map of the stacked score plus a sliver ``rank_keep`` of the stacked score itself
    (isotonic steps are flat: the sliver keeps every hour's ranking). Training's
    ``stacking.Stack.apply`` is this function, and every threshold in the manifest (the shipped one,
    the site table, the alert-share curve) was chosen on its values; float64 throughout, so a
    threshold that lies on one of them flags that hour here too."""
    s = np.asarray(stacked, np.float64)
    return (1 - rank_keep) * np.interp(s, knots_x, knots_y) + rank_keep * s


def model_score(
    meta: Mapping[str, Any], name: ModelName, p: float, top: list[FeatureContribution]
) -> ModelScore | None:
    """One model's published score from its manifest entry (version, threshold); None when ``p`` is
    not a finite number: that model's score is left out of the patient's scores (the rules and the
    other models still go out), never raised. ``min(max(nan, 0), 1)`` is NaN, which ``ModelScore``
    refuses, and the error made every patient of the batch rules-only. A combined risk computed from
    such a probability is NaN too (``_logit``) and left out with it; the sequence model's, at weight 0,
    leaves the combined risk as it is (``stacked_risk``)."""
    if not math.isfinite(p):
        return None
    thr = float(meta["threshold"])
    p = float(min(max(p, 0.0), 1.0))
    return ModelScore(
        model=name, version=str(meta["version"]), probability=p, threshold=thr, positive=p >= thr, top_features=top
    )


@dataclass(frozen=True)
class StayRisk:
    """Per-hour probabilities of one stay."""

    diagnosis: np.ndarray
    deterioration: np.ndarray
    combined: np.ndarray


@dataclass
class SteppingBundle:
    manifest: dict[str, Any]
    tree_session: Any
    step_session: Any
    tree_table: dict[str, np.ndarray]
    artifacts_dir: Path
    # the trees' contributions as one ONNX call (``models.train.contrib_graph``); None in a bundle
    # written before it existed, explained by the numpy walk over ``tree_table`` (the same figures)
    contrib_session: Any | None = None
    # how the combined threshold was chosen for this site (``at_site``); None: the shipped one
    threshold_choice: AlertThreshold | None = None
    # a window model's scored-hours graph, which the stream scores with (``window_model``)
    window_session: Any | None = None

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def hour_zero(self) -> str:
        """Where training counted a stay's hours from (``models.hour_zero``): ``first-measurement``
        since 2.7.0, as the stream and ``vigil predict`` count; a bundle without the record (2.0-2.6)
        counted from its files' first row, and is served an hour or more off on stays whose first
        row was empty (docs/models.md, "Hour 0")."""
        return str(self.manifest.get("hour_zero", "first-row"))

    @property
    def hidden(self) -> int:
        return int(self.manifest["models"]["deterioration"]["hidden"])

    @functools.cached_property
    def sequence_columns(self) -> np.ndarray | None:
        """The sequence inputs the model reads, as indices into ``SEQUENCE_INPUTS`` (None: all;
        bundles 2.0-2.5 read ``SEQUENCE_INPUTS_V1``)."""
        return sequence_columns(self.manifest["sequence_inputs"])

    @functools.cached_property
    def state_tag(self) -> int:
        """What carries this bundle's recurrent states are tagged with (``stepping.state_tag``)."""
        seq = self.manifest["models"]["deterioration"]
        return state_tag(self.manifest["files"][seq["file"]]["sha256"])

    @property
    def window_model(self) -> WindowModel | None:
        """The stream's form of a window model (``stepping.WindowModel``: every scored hour of a batch
        in one call of the scored-hours graph); None: a recurrent model, whose state is carried."""
        if self.window_session is None:
            return None
        return WindowModel(self.window_probability, int(self.manifest["models"]["deterioration"]["window_hours"]))

    def window_probability(self, x: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The scored-hours graph: patients' hours [P, T, F] (right-padded) and the positions of the
        hours to score [P, K] -> their probabilities [P, K]."""
        assert self.window_session is not None
        feed = {"hours": x.astype(np.float32), "positions": np.asarray(positions, np.int64)}
        return np.asarray(self.window_session.run(None, feed)[0], np.float32)

    @property
    def combined_threshold(self) -> float:
        return float(self.manifest["models"]["combined"]["threshold"])

    @property
    def alert_threshold(self) -> AlertThreshold:
        """How the combined threshold was chosen (``at_site``; the shipped one by default)."""
        return self.threshold_choice or choose_threshold(self.manifest["models"]["combined"])

    def at_site(self, site: Site | None = None) -> SteppingBundle:
        """This bundle alerting at a site's threshold (``models.site_threshold``): every published
        combined score carries it, so the alert agent, the dashboard and ``vigil predict`` agree."""
        combined = self.manifest["models"]["combined"]
        choice = choose_threshold(combined, site)
        manifest = copy.deepcopy(self.manifest)
        manifest["models"]["combined"]["threshold"] = choice.threshold  # what model_score publishes
        return dataclasses.replace(self, manifest=manifest, threshold_choice=choice)

    # ------------------------------------------------------------------ models
    def step(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h_next, p = self.step_session.run(None, {"x": x.astype(np.float32), "h": h.astype(np.float32)})
        return h_next, p.reshape(-1)

    def tree_probability(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0, np.float32)
        out = self.tree_session.run(None, {"features": features.astype(np.float32)})
        return np.asarray(out[1])[:, 1].astype(np.float32)

    def combine(self, p_tree: np.ndarray, p_seq: np.ndarray) -> np.ndarray:
        """The combined risk, float64: training's ``Stack.apply`` with the manifest's stacker, knots
        and ``rank_keep`` (0 in a manifest written before it was stored: isotonic alone). Kept in
        float64 up to the threshold: a float32 copy can fall below a threshold its hour is on."""
        meta = self.manifest["models"]["combined"]
        cal = meta["calibration"]
        stacked = stacked_risk(meta["stacker"], p_tree, p_seq)
        return calibrated_risk(stacked, cal["x"], cal["y"], float(cal.get("rank_keep", 0.0)))

    # ------------------------------------------------------------------ offline
    def stay_risks(
        self, matrices: Sequence[np.ndarray], statics: Sequence[Mapping[str, float] | None]
    ) -> list[StayRisk]:
        """Every hour of every stay: one scan per stay, one tree call, the one-step graph stepped
        through all stays in lock step (only the probabilities kept)."""
        inputs = [stay_inputs(m, s) for m, s in zip(matrices, statics, strict=True)]
        feats = [i.tree_features(np.arange(len(i.rows)), s) for i, s in zip(inputs, statics, strict=True)]
        lengths = [len(f) for f in feats]
        p_tree = self.tree_probability(np.concatenate(feats)) if sum(lengths) else np.zeros(0, np.float32)
        cols = self.sequence_columns
        seqs = [i.sequence if cols is None else i.sequence[:, cols] for i in inputs]
        chains = run_chains(self.step, [(None, x) for x in seqs], self.hidden, keep_states=False)
        p_seq = np.concatenate([p for _, p in chains]) if sum(lengths) else np.zeros(0, np.float32)
        comb = self.combine(p_tree, p_seq)
        bounds = np.r_[0, np.cumsum(lengths)]
        return [StayRisk(p_tree[a:b], p_seq[a:b], comb[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    # ------------------------------------------------------------------ stream
    def contributions(self, feats: np.ndarray) -> np.ndarray:
        """[B, F] Saabas contributions (log-odds) of the tree model."""
        if self.contrib_session is None:
            return tree_contributions(self.tree_table, feats)[0]
        out = self.contrib_session.run(None, {"features": feats.astype(np.float32)})[0]
        return np.asarray(out, np.float64)

    def explain(self, feats: np.ndarray) -> list[list[FeatureContribution]]:
        """Tree contributions (log-odds): the largest physiological ones first; the features that only
        say how often or how long ago something was measured are summed into one
        ``measurement_pattern`` entry, listed last whatever its size (issue 14: it tells how closely the
        patient was watched, not what is wrong, yet carries 40 % of the trees' gain)."""
        contrib = self.contributions(feats)
        physiology = np.nonzero(~_PATTERN)[0]
        c, v = contrib[:, physiology], feats[:, physiology].astype(np.float64)
        # largest |contribution| first, ties in feature order (one stable sort per batch), zeros left out
        order = np.argsort(-np.abs(c), axis=1, kind="stable")[:, : TOP_K - 1]
        top_c, top_v = np.take_along_axis(c, order, 1), np.take_along_axis(v, order, 1)
        habit = contrib[:, _PATTERN].sum(1)
        out = []
        for i in range(len(feats)):
            row = [
                FeatureContribution(
                    feature=TREE_FEATURES[physiology[j]], value=None if np.isnan(val) else float(val), contribution=ci
                )
                for j, ci, val in zip(order[i].tolist(), top_c[i].tolist(), top_v[i].tolist(), strict=True)
                if ci != 0.0
            ]
            if habit[i] != 0.0:
                row.append(FeatureContribution(feature=MEASUREMENT_PATTERN, value=None, contribution=float(habit[i])))
            out.append(row)
        return out


def load_stepping_bundle(
    artifacts_dir: str | Path | None = None, *, intra_op_threads: int | None = None, prefer_gpu: bool = True
) -> SteppingBundle:
    """Open the stepping bundle after checking every pinned file's sha256 and the input lists; a file
    it opens must be pinned (``integrity.pinned_file``). ``intra_op_threads`` is the sequence graphs'
    (None: one per core); the tree graphs always run on ``TREE_THREADS``, so that a tree probability
    does not depend on how many threads or stays scored it."""
    from vigil.models.session import create_session

    d = Path(artifacts_dir) if artifacts_dir else STEPPING_DIR
    manifest = load_manifest(d)
    if manifest.get("format") != FORMAT:
        raise ArtifactIntegrityError(f"{d}: not a {FORMAT} bundle: {OTHER_VERSION}")
    verify_artifacts(manifest, d)
    if list(manifest["tree_features"]) != TREE_FEATURES:
        raise ArtifactIntegrityError(f"{d}: its trees read other features than this code computes: {OTHER_VERSION}")
    columns = sequence_columns(manifest["sequence_inputs"])
    n_inputs = N_SEQUENCE_INPUTS if columns is None else len(columns)
    models = manifest["models"]
    seq = models["deterioration"]
    if seq.get("kind") not in SEQUENCE_KINDS:
        raise ArtifactIntegrityError(f"{d}: unknown deterioration model kind {seq.get('kind')!r}: {OTHER_VERSION}")
    trees = models["sepsis_diagnosis"]
    # every file opened below is one whose sha256 verify_artifacts checked (t13: a window graph the
    # manifest named but did not pin was served as it was found)
    tree_file, table_file = (
        pinned_file(manifest, d, trees["file"]),
        pinned_file(manifest, d, trees["contributions_file"]),
    )
    graph = trees.get("contributions_graph")
    graph_file = pinned_file(manifest, d, graph) if graph else None
    step_file = pinned_file(manifest, d, seq["file"])
    window_file = pinned_file(manifest, d, seq["window_file"]) if seq["kind"] == "attention-step" else None
    with np.load(table_file) as z:
        table = {k: z[k] for k in z.files}
    open_ = {"intra_op_threads": intra_op_threads, "prefer_gpu": prefer_gpu}
    # tree walks run on the CPU provider whatever the device: nothing to gain from a GPU copy; and on
    # one thread whatever ``intra_op_threads`` says (``TREE_THREADS``)
    contrib = create_session(graph_file, intra_op_threads=TREE_THREADS, prefer_gpu=False) if graph_file else None
    step = create_session(step_file, **open_)  # type: ignore[arg-type]
    if step.get_inputs()[1].shape[1] != int(seq["hidden"]):
        raise ArtifactIntegrityError(
            f"{d}: the one-step graph's state is not the manifest's {seq['hidden']} floats: {COPY_AGAIN}"
        )
    if step.get_inputs()[0].shape[1] != n_inputs:
        raise ArtifactIntegrityError(
            f"{d}: the one-step graph does not read the manifest's {n_inputs} sequence inputs: {COPY_AGAIN}"
        )
    window = create_session(window_file, **open_) if window_file else None  # type: ignore[arg-type]
    return SteppingBundle(
        manifest=manifest,
        tree_session=create_session(tree_file, intra_op_threads=TREE_THREADS, prefer_gpu=prefer_gpu),
        step_session=step,
        tree_table=table,
        artifacts_dir=d,
        contrib_session=contrib,
        window_session=window,
    )


def is_stepping_bundle(artifacts_dir: str | Path) -> bool:
    path = Path(artifacts_dir) / "manifest.json"
    return path.exists() and load_manifest(artifacts_dir).get("format") == FORMAT


class BundleDirError(UserError):
    """A folder named as a bundle (``VIGIL_BUNDLE_DIR``, ``--artifacts``, ``vigil bundle check DIR``)
    holds no stepping bundle, or a damaged one."""


def require_stepping_bundle(folder: str | Path, named: str, otherwise: str) -> Path:
    """``folder`` when it holds a stepping bundle's manifest, else the user's one line: ``named``
    is how they named the folder (``"VIGIL_BUNDLE_DIR="``, ``""``), ``otherwise`` what to do instead."""
    d = Path(folder)
    if not is_stepping_bundle(d):
        raise BundleDirError(
            f"{named}{d} holds no stepping bundle (a manifest.json that `vigil train` wrote): {otherwise}"
        )
    return d
