"""Shift tests built from set A (issue 12): the figures models are chosen by.

Every threshold, and every stacker of a combined score, is fitted on the training side of the
shift it is reported on, never on the rows it scores:

- ``cv``: grouped k-fold by patient; out-of-fold (OOF) scores; fold f's stacker and threshold are
  fitted on the other folds' OOF scores (nested).
- ``labs_thinned``: the CV fold models score their held-out stays with each hour's lab draw kept
  with probability 0.1 (``models.shift.thin``), once per thinning seed, at fold f's stacker
  and threshold; the figure is the mean over the seeds (each seed under ``labs_thinned_seeds``).
- ``vitals_thinned`` (protocol 3): the same with each hour's vital-sign charting kept with
  probability 0.5 (a unit charting every second hour; ``vitals_thinned_seeds``).
- ``unitA->unitB``: trained on the stays of ICU type A only, tested on type B. Stacker and threshold
  come from an inner CV on unit A alone (the same patient folds restricted to A), so nothing that
  decides the score has seen a unit-B stay.
- ``unitA->unitB+labs_thinned`` (protocol 4): the compound of both, another ICU that also draws fewer
  labs: unit A's model scores unit B's stays with each hour's lab draw kept with probability 0.1 (the
  same thinned copies as ``labs_thinned``), at the threshold unit A's inner folds chose on unthinned
  stays; the figure is the mean over the thinning seeds.
- ``labs_every24h`` (protocol 5): the CV fold models score their held-out stays as a hospital
  drawing labs by routine would record them: at most one lab draw a day (``models.shift.schedule``;
  deterministic, one copy), at fold f's stacker and threshold. Random thinning keeps set A's habit of
  drawing more often for the sicker patient, a schedule erases it.
- ``unitA->unitB+labs_every24h`` (protocol 6): the compound with labs drawn by routine: unit A's
  model scores unit B's stays with at most one lab draw a day, at the threshold unit A's inner folds
  chose on stays as drawn. Unlike the randomly thinned compound, no recipe taught on randomly thinned
  labs has seen this thinning in training.
- ``panels_omitted`` (protocol 7): the CV fold models score their held-out stays as a hospital
  with other ordering habits would record them: each optional lab panel (blood gas, lactate, liver,
  coagulation, troponin; ``models.shift.omit_panels``) ordered for a stay with probability 0.5,
  for all of it or none, once per seed (``panels_omitted_seeds``), at fold f's stacker and
  threshold. No training copy teaches it: the held-out shift for recipes taught on thinned labs or
  on labs by routine.
- ``in_unitB``: the control for ``unitA->unitB``: the inner CV on unit B itself (a model trained on
  ~3/4 of B's stays, nested threshold). Transfer minus control is what the unit change costs at a
  comparable training size; control minus ``cv`` is what the smaller training set and unit B's
  own difficulty cost.

Each block reports AUROC, AUPRC, normalized utility at the threshold the procedure ships, the
utility at the best threshold in hindsight, and both thresholds (how far the best one moves).

Predictions have a leading model axis ([k, rows]): one model (k = 1), or several that a combiner
(``Combiner``: fitted on training-side OOF scores, labels and weights) merges into one score.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vigil.models.utility import auroc_auprc, best_threshold, utility_curve, utility_tables

# a shifted copy of the cohort: ("labs" | "vitals" | "panels", seed) or ("labs_every", hours between kept draws)
Copy = tuple[str, int]
Fit = Callable[[np.ndarray], Any]  # train rows (bool mask) -> model
Predict = Callable[[Any, np.ndarray, "Copy | None"], np.ndarray]  # (model, test rows, copy or None) -> scores
Scorer = Callable[[np.ndarray], np.ndarray]  # [k, rows] -> [rows]
Combiner = Callable[[np.ndarray, np.ndarray, np.ndarray], Scorer]  # (train scores [k, n], y, w) -> scorer
# a shift's held-out scores: its rows (a mask over every hour) and the score of each, at the
# stacker and calibration its training side fitted (``figures(held_out=...)``)
HeldOut = dict[str, tuple[np.ndarray, np.ndarray]]
UNITS = (1, 2)
UNIT_SHIFTS = tuple(f"unit{a}->unit{3 - a}" for a in UNITS)
COMPOUND = tuple(f"{k}+labs_thinned" for k in UNIT_SHIFTS)  # protocol 4: the unit shifts, labs thinned
SHIFTED_KINDS = ("labs", "vitals", "labs_every", "panels")  # the kinds of the CV fold models' shifted copies
PANELS_OMITTED = "panels_omitted"  # protocol 7: optional lab panels ordered for half the stays


def daily_name(every_h: int) -> str:
    """The shift of labs drawn at most once per ``every_h`` hours (protocol 5)."""
    return f"labs_every{every_h}h"


def scheduled_compound(key: str, every_h: int) -> str:
    """A unit shift with the test unit's labs drawn on that schedule (protocol 6)."""
    return f"{key}+{daily_name(every_h)}"


def single(scores: np.ndarray, y: np.ndarray, w: np.ndarray) -> Scorer:
    """The combiner of one model: its own score."""
    return lambda p: p[0]


class Utility:
    """Per-row utility tables of a cohort, to score thresholds on any subset of stays."""

    def __init__(self, labels: np.ndarray, lengths: np.ndarray) -> None:
        self.labels, self.lengths = labels, lengths
        self.offsets = np.r_[0, np.cumsum(lengths)]
        self.stay_of_row = np.repeat(np.arange(len(lengths)), lengths)
        by = [labels[a:b] for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True)]
        self.u0, self.u1, _, _ = utility_tables(by)
        best = np.zeros(len(lengths))
        for p, lab in enumerate(by):
            if lab.any():
                t = int(np.argmax(lab)) + 6
                sl = slice(self.offsets[p] + max(0, t - 12), self.offsets[p] + min(t + 4, len(lab)))
                best[p] = self.u1[sl].sum() - self.u0[sl].sum()
        self.best_gain = best  # per stay: utility of the ideal alerts minus no alerts

    def rows_of(self, stays: np.ndarray) -> np.ndarray:
        return np.repeat(stays, self.lengths)

    def threshold(self, score: np.ndarray, rows: np.ndarray) -> float:
        stays = self._stays(rows)
        inaction = float(self.u0[rows].sum())
        return best_threshold(score, self.u0[rows], self.u1[rows], inaction + self.best_gain[stays].sum(), inaction)

    def utility(self, score: np.ndarray, rows: np.ndarray, threshold: float) -> float:
        """Normalized utility; NaN where ``rows`` hold no septic stay (nothing to normalize by: a
        fold of a small smoke run), which ``_pooled`` leaves out of the fold mean."""
        best = float(self.best_gain[self._stays(rows)].sum())
        if best == 0.0:
            return float("nan")
        gain = float(np.where(score >= threshold, self.u1[rows] - self.u0[rows], 0.0).sum())
        return gain / best

    def best(self, score: np.ndarray, rows: np.ndarray) -> tuple[float, float]:
        stays = self._stays(rows)
        inaction = float(self.u0[rows].sum())
        thr, util = utility_curve(score, self.u0[rows], self.u1[rows], inaction + self.best_gain[stays].sum(), inaction)
        i = int(np.argmax(util))
        return float(thr[i]), float(util[i])

    def _stays(self, rows: np.ndarray) -> np.ndarray:
        return np.unique(self.stay_of_row[rows])


def block(u: Utility, score: np.ndarray, rows: np.ndarray, threshold: float) -> dict[str, float]:
    auroc, auprc = auroc_auprc(u.labels[rows], score)
    best_thr, best_util = u.best(score, rows)
    return {
        "auroc": round(auroc, 4),
        "auprc": round(auprc, 4),
        "utility": round(u.utility(score, rows, threshold), 4),
        "threshold": round(threshold, 5),
        "best_utility": round(best_util, 4),
        "best_threshold": round(best_thr, 5),
        "alert_share": round(float((score >= threshold).mean()), 4),
    }


@dataclass
class ShiftPredictions:
    """One recipe's scores under every shift, [k, rows] each (k models; rows in cohort order)."""

    oof: np.ndarray  # every row, out of fold
    oof_thin: dict[int, np.ndarray]  # thinning seed -> every row, out of fold, labs thinned
    other_unit: dict[str, np.ndarray]  # "unit1->unit2" -> the unit-2 rows, model trained on unit 1
    in_unit: dict[int, np.ndarray] = field(default_factory=dict)  # unit -> its rows, inner-CV OOF
    oof_vitals: dict[int, np.ndarray] = field(default_factory=dict)  # as oof_thin, vital signs thinned
    # "unit1->unit2" -> thinning seed -> the unit-2 rows with labs thinned, model trained on unit 1
    other_unit_thin: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    # hours between kept lab draws (24) -> every row, out of fold, labs drawn on that schedule
    oof_sched: dict[int, np.ndarray] = field(default_factory=dict)
    # "unit1->unit2" -> hours between kept lab draws -> the unit-2 rows so drawn, model trained on unit 1
    other_unit_sched: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    oof_panels: dict[int, np.ndarray] = field(default_factory=dict)  # as oof_thin, optional panels omitted

    def save(self, path: Path) -> None:
        arrays = {"oof": self.oof}
        arrays.update({f"thin_{s}": v for s, v in self.oof_thin.items()})
        arrays.update({f"vitals_{s}": v for s, v in self.oof_vitals.items()})
        arrays.update({f"panels_{s}": v for s, v in self.oof_panels.items()})
        arrays.update({f"other_{k}": v for k, v in self.other_unit.items()})
        arrays.update({f"in_unit_{k}": v for k, v in self.in_unit.items()})
        arrays.update({f"otherthin_{s}_{k}": v for k, by in self.other_unit_thin.items() for s, v in by.items()})
        arrays.update({f"sched_{h}": v for h, v in self.oof_sched.items()})
        arrays.update({f"othersched_{h}_{k}": v for k, by in self.other_unit_sched.items() for h, v in by.items()})
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> ShiftPredictions:
        with np.load(path) as z:
            d = {k: z[k] for k in z.files}
        nested: dict[str, dict[str, dict[int, np.ndarray]]] = {"otherthin_": {}, "othersched_": {}}
        for k, v in d.items():
            for prefix, by in nested.items():
                if k.startswith(prefix):
                    copy, key = k[len(prefix) :].split("_", 1)
                    by.setdefault(key, {})[int(copy)] = v
        return cls(
            d["oof"],
            {int(k[5:]): v for k, v in d.items() if k.startswith("thin_")},
            {k[6:]: v for k, v in d.items() if k.startswith("other_")},
            {int(k[8:]): v for k, v in d.items() if k.startswith("in_unit_")},
            {int(k[7:]): v for k, v in d.items() if k.startswith("vitals_")},
            nested["otherthin_"],
            {int(k[6:]): v for k, v in d.items() if k.startswith("sched_")},
            nested["othersched_"],
            {int(k[7:]): v for k, v in d.items() if k.startswith("panels_")},
        )

    @staticmethod
    def stack(parts: Sequence[ShiftPredictions]) -> ShiftPredictions:
        """Several models' predictions as one [k, rows] set (the input of a combiner)."""
        cat = np.concatenate
        first = parts[0]

        def by_unit(get: Callable[[ShiftPredictions], dict[str, dict[int, np.ndarray]]]) -> dict:
            return {
                k: {c: cat([get(p)[k][c] for p in parts]) for c in by}
                for k, by in get(first).items()
                if all(c in get(p).get(k, {}) for p in parts for c in by)
            }

        return ShiftPredictions(
            cat([p.oof for p in parts]),
            {s: cat([p.oof_thin[s] for p in parts]) for s in first.oof_thin},
            {k: cat([p.other_unit[k] for p in parts]) for k in first.other_unit},
            {k: cat([p.in_unit[k] for p in parts]) for k in first.in_unit},
            {
                s: cat([p.oof_vitals[s] for p in parts])
                for s in first.oof_vitals
                if all(s in p.oof_vitals for p in parts)
            },
            by_unit(lambda p: p.other_unit_thin),
            {h: cat([p.oof_sched[h] for p in parts]) for h in first.oof_sched if all(h in p.oof_sched for p in parts)},
            by_unit(lambda p: p.other_unit_sched),
            {
                s: cat([p.oof_panels[s] for p in parts])
                for s in first.oof_panels
                if all(s in p.oof_panels for p in parts)
            },
        )


def predict_shifts(
    u: Utility,
    patient_fold: np.ndarray,
    unit: np.ndarray,
    fit: Fit,
    predict: Predict,
    thin_seeds: Sequence[int],
    log: Callable[[str], None] = print,
    vitals_seeds: Sequence[int] = (),
    lab_schedules: Sequence[int] = (),
    panel_seeds: Sequence[int] = (),
) -> ShiftPredictions:
    """Fit the recipe once per fold, once per unit, and once per fold within each unit; the fold
    models also score their stays' thinned copies (labs per ``thin_seeds``, vitals per ``vitals_seeds``,
    labs drawn at most once per each of ``lab_schedules`` hours, optional panels omitted per
    ``panel_seeds``), and each unit's model the other
    unit's stays with labs thinned (``thin_seeds``) and drawn on each schedule."""
    row_fold, row_unit = u.rows_of(patient_fold), u.rows_of(unit)
    n, k = len(u.labels), int(patient_fold.max()) + 1
    oof = np.zeros(n)
    copies: list[Copy] = [("labs", s) for s in thin_seeds] + [("vitals", s) for s in vitals_seeds]
    copies += [("labs_every", h) for h in lab_schedules] + [("panels", s) for s in panel_seeds]
    shifted = {c: np.zeros(n) for c in copies}
    for f in range(k):
        test = row_fold == f
        model = fit(~test)
        oof[test] = predict(model, test, None)
        for c in copies:
            shifted[c][test] = predict(model, test, c)
        log(f"  fold {f} done")
    other, inner, other_thin, other_sched = {}, {}, {}, {}
    for a, key in zip(UNITS, UNIT_SHIFTS, strict=True):
        labs = [("labs", s) for s in thin_seeds] + [("labs_every", h) for h in lab_schedules]
        other[key], inner[a], drawn = unit_predictions(row_fold, row_unit, a, fit, predict, labs)
        other_thin[key] = {s: v for (kind, s), v in drawn.items() if kind == "labs"}
        other_sched[key] = {h: v for (kind, h), v in drawn.items() if kind == "labs_every"}
        log(f"  {key} (labs as drawn, thinned and by routine) and unit {a}'s inner folds done")
    by_kind = {kind: {s: v[None] for (k_, s), v in shifted.items() if k_ == kind} for kind in SHIFTED_KINDS}
    return ShiftPredictions(
        oof[None],
        by_kind["labs"],
        other,
        inner,
        by_kind["vitals"],
        other_thin,
        by_kind["labs_every"],
        other_sched,
        by_kind["panels"],
    )


def unit_predictions(
    row_fold: np.ndarray,
    row_unit: np.ndarray,
    a: int,
    fit: Fit,
    predict: Predict,
    copies: Sequence[Copy] = (),
) -> tuple[np.ndarray, np.ndarray, dict[Copy, np.ndarray]]:
    """Unit ``a``'s model scoring the other unit's rows, unit ``a``'s inner-fold scores of its own
    rows (which choose the threshold), each [1, rows], and the same model scoring the other unit's
    shifted ``copies`` of its rows (the compound shifts)."""
    model, test = fit(row_unit == a), row_unit == 3 - a
    other = predict(model, test, None)
    shifted = {c: predict(model, test, c)[None] for c in copies}
    scores = np.zeros(len(row_fold))
    for f in np.unique(row_fold):
        test = (row_unit == a) & (row_fold == f)
        scores[test] = predict(fit((row_unit == a) & (row_fold != f)), test, None)
    return other[None], scores[row_unit == a][None], shifted


def unit_block(
    u: Utility,
    in_unit: np.ndarray,
    other: np.ndarray,
    row_unit: np.ndarray,
    a: int,
    y: np.ndarray,
    w: np.ndarray,
    combiner: Combiner = single,
) -> dict[str, float]:
    """Unit ``a`` -> the other unit, at the threshold unit ``a``'s inner folds choose."""
    return unit_blocks(u, in_unit, [other], row_unit, a, y, w, combiner)[0]


def unit_blocks(
    u: Utility,
    in_unit: np.ndarray,
    others: Sequence[np.ndarray],
    row_unit: np.ndarray,
    a: int,
    y: np.ndarray,
    w: np.ndarray,
    combiner: Combiner = single,
    held_out: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[dict[str, float]]:
    """``unit_block`` for several scorings of the other unit's rows (as drawn, shifted copies): the
    combiner and threshold fitted once on unit ``a``'s inner folds. ``held_out`` gets each scoring's
    rows and combined score, in ``others``' order."""
    train, test = row_unit == a, row_unit == 3 - a
    score = combiner(in_unit, y[train], w[train])
    threshold = u.threshold(score(in_unit), train)
    scored = [score(other) for other in others]
    if held_out is not None:
        held_out.extend((test, p) for p in scored)
    return [block(u, p, test, threshold) for p in scored]


def unit_scorings(pred: ShiftPredictions, key: str) -> list[np.ndarray]:
    """Every scoring of unit shift ``key``'s test rows by the training unit's model: as drawn, each
    thinned copy (protocol 4), each schedule (protocol 6); ``named_unit_blocks`` names their blocks."""
    thinned, daily = pred.other_unit_thin.get(key, {}), pred.other_unit_sched.get(key, {})
    return [pred.other_unit[key], *thinned.values(), *daily.values()]


def named_unit_blocks(pred: ShiftPredictions, key: str, blocks: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The blocks of ``unit_scorings(pred, key)``, in its order, by shift name: the unit shift, its
    thinned compound (the mean over the thinning seeds, with ``seeds``), each scheduled compound."""
    thinned, daily = pred.other_unit_thin.get(key, {}), pred.other_unit_sched.get(key, {})
    by_seed, by_schedule = blocks[1 : 1 + len(thinned)], blocks[1 + len(thinned) :]
    out = {key: blocks[0]}
    if by_seed:
        out[f"{key}+labs_thinned"] = {**seed_mean(list(by_seed)), "seeds": sorted(thinned)}
    out.update({scheduled_compound(key, h): b for h, b in zip(daily, by_schedule, strict=True)})
    return out


def _nested(
    u: Utility,
    scores: np.ndarray,
    rows: np.ndarray,
    row_fold: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    combiner: Combiner,
    extra: dict[Copy, np.ndarray] | None = None,
    held_out: dict[Copy | None, tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[dict[str, Any], dict[Copy, dict[str, Any]]]:
    """Nested CV figures over ``rows`` (``scores`` [k, rows.sum()]): fold f's combiner and threshold
    from the other folds; ``extra`` (shifted copy -> scores) is scored with fold f's choices.
    ``held_out`` gets the pooled scores (``rows`` and each fold's score of its rows; under None, and
    each shifted copy's under its key)."""
    fold = row_fold[rows]
    yy, ww = y[rows], w[rows]
    idx = np.nonzero(rows)[0]
    pooled = np.zeros(len(idx))
    extra = extra or {}
    pooled_extra = {s: np.zeros(len(idx)) for s in extra}
    folds: list[dict[str, float]] = []
    extra_folds: dict[Copy, list[dict[str, float]]] = {s: [] for s in extra}
    for f in np.unique(fold):
        test = fold == f
        score = combiner(scores[:, ~test], yy[~test], ww[~test])
        mask_train, mask_test = np.zeros(len(u.labels), bool), np.zeros(len(u.labels), bool)
        mask_train[idx[~test]], mask_test[idx[test]] = True, True
        thr = u.threshold(score(scores[:, ~test]), mask_train)
        pooled[test] = score(scores[:, test])
        folds.append(block(u, pooled[test], mask_test, thr))
        for s, ex in extra.items():
            pooled_extra[s][test] = score(ex[:, test])
            extra_folds[s].append(block(u, pooled_extra[s][test], mask_test, thr))
    if held_out is not None:
        held_out[None] = (rows, pooled)
        held_out.update({c: (rows, p) for c, p in pooled_extra.items()})
    shipped = u.threshold(combiner(scores, yy, ww)(scores), rows)
    main = _pooled(u, pooled, rows, folds, shipped)
    return main, {s: _pooled(u, pooled_extra[s], rows, extra_folds[s], shipped) for s in extra}


def figures(
    u: Utility,
    pred: ShiftPredictions,
    patient_fold: np.ndarray,
    unit: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    combiner: Combiner = single,
    held_out: HeldOut | None = None,
) -> dict[str, Any]:
    """Every shift block of one score (see the module docstring for who chooses what). ``held_out``
    gets the scores behind the blocks of ``cv``, of the CV fold models on each lab schedule and of
    each unit shift as drawn and on each schedule, by block name (the card's held-out calibration)."""
    row_fold, row_unit = u.rows_of(patient_fold), u.rows_of(unit)
    everything = np.ones(len(u.labels), bool)
    out: dict[str, Any] = {"protocol": 3 if pred.oof_vitals else 2}
    extra = {("labs", s): v for s, v in pred.oof_thin.items()}
    extra.update({("vitals", s): v for s, v in pred.oof_vitals.items()})
    extra.update({("labs_every", h): v for h, v in pred.oof_sched.items()})
    extra.update({("panels", s): v for s, v in pred.oof_panels.items()})
    pooled: dict[Copy | None, tuple[np.ndarray, np.ndarray]] = {}
    out["cv"], shifted = _nested(u, pred.oof, everything, row_fold, y, w, combiner, extra, pooled)
    scheduled = [daily_name(h) for h in pred.oof_sched]  # protocol 5: labs drawn by routine
    for h, name in zip(pred.oof_sched, scheduled, strict=True):
        out[name] = shifted[("labs_every", h)]
    if held_out is not None:
        held_out["cv"] = pooled[None]
        held_out.update({daily_name(h): pooled[("labs_every", h)] for h in pred.oof_sched})
    for kind, name in (("labs", "labs_thinned"), ("vitals", "vitals_thinned"), ("panels", PANELS_OMITTED)):
        blocks = {s: b for (k, s), b in shifted.items() if k == kind}
        if blocks:
            out[f"{name}_seeds"] = {str(s): b for s, b in blocks.items()}
            out[name] = {**seed_mean(list(blocks.values())), "seeds": sorted(blocks)}
    compound, routine = [], []
    for a, key, both in zip(UNITS, UNIT_SHIFTS, COMPOUND, strict=True):
        # protocols 4 and 6: the same model and threshold, the test unit's labs thinned or drawn by routine
        unit_scores: list[tuple[np.ndarray, np.ndarray]] = []
        blocks = unit_blocks(u, pred.in_unit[a], unit_scorings(pred, key), row_unit, a, y, w, combiner, unit_scores)
        named = named_unit_blocks(pred, key, blocks)
        if held_out is not None:  # as drawn, and each schedule (the last scorings: ``unit_scorings``)
            daily = pred.other_unit_sched.get(key, {})
            held_out[key] = unit_scores[0]
            routine_scores = unit_scores[len(unit_scores) - len(daily) :]
            held_out.update({scheduled_compound(key, h): p for h, p in zip(daily, routine_scores, strict=True)})
        thinned = pred.other_unit_thin.get(key, {})
        if both in named:
            out[f"{both}_seeds"] = {str(s): b for s, b in zip(thinned, blocks[1 : 1 + len(thinned)], strict=True)}
            compound.append(both)
        routine += [k for k in named if k not in (key, both)]
        out.update(named)
    if compound:
        out["protocol"] = 4
    if scheduled and compound:
        out["protocol"] = 6 if routine else 5
    if PANELS_OMITTED in out:
        out["protocol"] = 7
    for b in UNITS:
        out[f"in_unit{b}"], _ = _nested(u, pred.in_unit[b], row_unit == b, row_fold, y, w, combiner)
    single_shifts = ("cv", "labs_thinned", "vitals_thinned", PANELS_OMITTED, "unit1->unit2", "unit2->unit1")
    names = (*(n for n in single_shifts if n in out), *compound, *scheduled, *routine)
    out["worst"] = {m: min(out[s][m] for s in names) for m in ("auroc", "utility")}
    # a recipe taught on labs by routine (``--teach-daily-labs``) is judged on the shifts it never saw
    unscheduled = [n for n in names if n not in scheduled and n not in routine]
    out["worst_without_schedule"] = {m: min(out[s][m] for s in unscheduled) for m in ("auroc", "utility")}
    return out


_MEANS = ("auroc", "auprc", "utility", "utility_sd", "threshold", "best_utility", "best_threshold", "alert_share")


def seed_mean(blocks: list[dict[str, Any]]) -> dict[str, float]:
    """The mean of one shift's blocks over its thinning seeds."""
    means = [m for m in _MEANS if m in blocks[0]]  # a unit block has one threshold, no fold spread
    return {m: round(float(np.mean([b[m] for b in blocks])), 5 if "threshold" in m else 4) for m in means}


def _pooled(
    u: Utility, score: np.ndarray, rows: np.ndarray, folds: list[dict[str, float]], shipped: float
) -> dict[str, Any]:
    auroc, auprc = auroc_auprc(u.labels[rows], score)
    best_thr, best_util = u.best(score, rows)
    util = [f["utility"] for f in folds if not np.isnan(f["utility"])] or [float("nan")]
    return {
        "auroc": round(auroc, 4),
        "auprc": round(auprc, 4),
        "utility": round(float(np.mean(util)), 4),
        "utility_sd": round(float(np.std(util)), 4),
        "threshold": round(shipped, 5),
        "best_utility": round(best_util, 4),
        "best_threshold": round(best_thr, 5),
        "alert_share": round(float(np.mean([f["alert_share"] for f in folds])), 4),
    }
