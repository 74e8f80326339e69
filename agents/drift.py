"""Ward input drift in the worker: the hours that close in each scored batch feed ``models.drift``'s
per-ward windows; the ward's PSI goes to the ``vigil_drift_*`` gauges at most every
``gauges_every_s`` (a window of thousands of hours moves little between batches) and, at most every
``publish_every_s`` per ward, to ``vigil.drift`` for the dashboard. Both are throttled with a
trailing edge: a ward whose window changed after its last report is reported again once its interval
has passed, by the next batch or by the worker's timer (``flush_drift``), so the last word the
gauges and the dashboard have is the window's latest state, also when the ward then goes quiet (a
report taken early, on a window of a few hours, must not stand as the ward's state). A ward still
judged but unchanged is said again every ``restate_every_s``: the dashboard forgets a ward no worker
has said anything of for longer (``agents.web.drift``), as Prometheus forgets a worker's series once
it drops them (below the gate) or is scaled away. Each worker sees the patients of its partitions:
its figures describe that sample of the ward. Each patient-hour enters its ward's window once, when
it first closes (``first_closed``)."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np

from vigil.agents.app import app, deadletter_topic, drift_topic
from vigil.agents.fleet import WORKER
from vigil.agents.runtime import Publisher, current_runtime
from vigil.infra import metrics
from vigil.infra.logging import get_logger
from vigil.infra.settings import DriftSettings
from vigil.models.bundle import SteppingBundle
from vigil.models.drift import REFERENCE_FILE, DriftMonitor, DriftReference, WardDriftReport
from vigil.models.stay_features import TREE_FEATURES
from vigil.models.stream_step import HourScore, StepOutcome
from vigil.schemas import topics
from vigil.schemas.codes import DYNAMIC_CODES
from vigil.schemas.drift import DriftInput, WardDrift

log = get_logger(__name__)
UNKNOWN_WARD = "unknown"
# Ward names come from the feeds: a worker keeps a drift window (~170 kB) and metric series for the
# first MAX_WARDS it meets, and counts the hours of any later name under OTHER_WARDS. A feed naming a
# new ward per message grew both without end (10,000 names: 1.7 GB of windows).
MAX_WARDS = 128
OTHER_WARDS = "other"


class WardNames(metrics.BoundedLabels):
    """The name a ward's hours are kept under in this process (``MAX_WARDS``, ``OTHER_WARDS``)."""

    def __init__(self, limit: int = MAX_WARDS) -> None:
        super().__init__(limit, OTHER_WARDS)
        self._told = False

    def __call__(self, ward: str | None) -> str:
        given = ward or UNKNOWN_WARD
        name, _ = self.keep(given)
        if name != given and not self._told:  # once: a feed names more wards than a hospital has
            log.warning("wards.over_limit", limit=self.limit, kept_as=OTHER_WARDS)
            self._told = True
        return name


WARD_NAMES = WardNames()
FLUSH_EVERY_S = 5.0  # the trailing edge's timer: a quiet ward's last report is at most this late
# A ward none of whose hours closed here for a day is closed, renamed or emptied (a ward charted in
# rounds closes hours every few hours): forgotten as one whose partitions left (``forget``). Kept, its
# window, counted in hours, never fell below the gate, and was said again, "drifted" maybe, for good.
IDLE_AFTER_S = 24 * 3600.0


class WardDriftTracker:
    def __init__(
        self,
        monitor: DriftMonitor,
        bundle_version: str,
        publish_every_s: float,
        gauges_every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        ward_names: WardNames | None = None,
        restate_every_s: float = math.inf,
    ) -> None:
        self.monitor = monitor
        self.ward_names = WARD_NAMES if ward_names is None else ward_names  # the worker's, as its metrics
        self.bundle_version = bundle_version
        self.publish_every_s = publish_every_s
        self.gauges_every_s = gauges_every_s
        self.restate_every_s = restate_every_s
        self._clock = clock
        self._published: dict[str, float] = {}
        self._reported: dict[str, float] = {}
        self._partitions: dict[str, set[int]] = {}  # the partitions each ward's hours came from here
        self._fed: dict[str, float] = {}  # when each ward last took hours here (``IDLE_AFTER_S``)
        # wards whose window changed since their last gauges update / published report
        self._unreported: set[str] = set()
        self._unpublished: set[str] = set()

    @classmethod
    def for_bundle(cls, bundle: SteppingBundle | None, settings: DriftSettings) -> WardDriftTracker | None:
        """A tracker when drift is enabled and the bundle has its training reference beside it."""
        if bundle is None:
            return None
        path = bundle.artifacts_dir / REFERENCE_FILE
        metrics.DRIFT_MONITORING.set(0)
        if not settings.enabled or not path.exists():
            log.warning("drift.off", reason="disabled" if path.exists() else "no training reference")
            return None
        try:
            reference = DriftReference.load(path)
            if problems := reference.problems():
                raise ValueError("; ".join(problems))
            min_hours, min_patients = reference.gate(settings.min_hours, settings.min_patients)
            # the operator's own gate, field by field, below the table's smallest ward maybe (a small
            # ward, a short demo): honoured, its wards read at the table's edge (more healthy ones
            # called drifted); a field left alone is raised to the table
            if "min_hours" in settings.model_fields_set:
                min_hours = settings.min_hours
            if "min_patients" in settings.model_fields_set:
                min_patients = settings.min_patients
            monitor = DriftMonitor.for_inputs(
                reference,
                DYNAMIC_CODES,
                TREE_FEATURES,
                window_hours=settings.window_hours,
                min_hours=min_hours,
                min_patients=min_patients,
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # the scores do not depend on it: serve them, say loudly that no ward's drift is watched
            # (`vigil bundle check` fails such a bundle before it is rolled out)
            log.warning("drift.off", reason="unusable training reference", detail=str(exc)[:300])
            return None
        table = reference.gate(settings.min_hours, settings.min_patients)
        if min_hours < table[0] or min_patients < table[1]:
            log.warning("drift.gate_below_table", min_hours=min_hours, min_patients=min_patients)
        elif (min_hours, min_patients) != (settings.min_hours, settings.min_patients):
            # a reference whose null table starts above the settings' gate (one drawn over 2,000-hour
            # windows only): wards are judged later after a restart, never against a table read too low
            log.info("drift.gate_raised", min_hours=min_hours, min_patients=min_patients)
        if min_hours > settings.window_hours:
            log.warning("drift.never_judged", window_hours=settings.window_hours, min_hours=min_hours)
        metrics.DRIFT_MONITORING.set(1)
        return cls(
            monitor,
            bundle.version,
            settings.publish_every_s,
            settings.gauges_every_s,
            restate_every_s=settings.restate_every_s,
        )

    def feed(
        self,
        patients: Sequence[str],
        wards: Sequence[str | None],
        outcomes: Sequence[StepOutcome],
        partitions: Sequence[int] | None = None,
    ) -> bool:
        """The closed hours of a batch into their wards' windows, reported by the next ``due`` (the
        next batch's, or the timer's, ``flush_drift``); whether there were any. The scoring step feeds
        them once its batch is done (``agents.runtime.when_done``): a batch handled again after a
        failed attempt fed its hours twice."""
        names = [self.ward_names(w) for w, o in zip(wards, outcomes, strict=True) for _ in o.closed]
        if not names:
            return False
        # a per-process key per patient (counts distinct patients; never leaves the process)
        keys = np.array([hash(p) for p, o in zip(patients, outcomes, strict=True) for _ in o.closed], np.int64)
        rows = np.concatenate([o.closed_rows for o in outcomes if o.closed])
        feats = np.stack([h.features for o in outcomes for h in o.closed])
        self.monitor.observe(names, rows, feats, keys)
        self._fed.update(dict.fromkeys(names, self._clock()))
        if partitions is not None:  # each outcome's patient's partition of the events topic
            for ward, partition, o in zip(wards, partitions, outcomes, strict=True):
                if o.closed:
                    self._partitions.setdefault(self.ward_names(ward), set()).add(partition)
        self._unreported.update(names)
        self._unpublished.update(names)
        return True

    def due(self, owned: set[int] | None = None) -> list[WardDriftReport]:
        """Update the gauges of the wards changed since their last update ``gauges_every_s`` ago or
        more, and return the reports due for publishing: the wards changed since their last report
        ``publish_every_s`` ago or more (a ward unchanged since is not reported again). ``owned``: the
        partitions of the events topic this worker holds now; a ward none of whose hours came from one
        of them has no patient here any more (a rebalance moved them, ``forget``)."""
        now = self._clock()
        gauges = [w for w in self._unreported if now - self._reported.get(w, -1e9) >= self.gauges_every_s]
        publish = {w for w in self._unpublished if now - self._published.get(w, -1e9) >= self.publish_every_s}
        gone = [w for w, at in self._fed.items() if now - at > IDLE_AFTER_S]
        if owned is not None:
            gone += [w for w, came in self._partitions.items() if not came & owned]
        self.forget(sorted(set(gone)))
        # unchanged, said again now and then: the dashboard keeps a ward only while a worker says it
        publish |= {w for w, at in self._published.items() if now - at >= self.restate_every_s}
        wards = sorted({*gauges, *publish})
        if not wards:
            return []
        reports = self.monitor.reports(wards)
        shown = {r.ward for r in reports}
        for ward in publish - shown:  # below the gate: nothing to say until its window changes
            self._published.pop(ward, None)
        for ward in gauges:
            if ward not in shown and self._reported.pop(ward, None) is not None:
                # below the gate now (a window of too few patients): its last figures described
                # another window, so its series go rather than stand ("drifted" held for days)
                self._clear_gauges(ward)
        for r in reports:
            _set_gauges(r)
            self._reported[r.ward] = now
            self._unreported.discard(r.ward)
        due = [r for r in reports if r.ward in publish]
        for r in due:
            self._published[r.ward] = now
            self._unpublished.discard(r.ward)
        return due

    def forget(self, wards: Sequence[str]) -> None:
        """Wards whose patients left this worker (their partitions went to another in a rebalance; no
        hour for ``IDLE_AFTER_S``: the ward closed): their
        window, its gauges (the workers' alert reads them) and their restatement go. Kept, the frozen
        window, "drifted" maybe, was said every two minutes for good, and the dashboard, showing a ward's
        most drifted share, showed it; a window kept for the ward's return mixed its old hours in."""
        for ward in wards:
            self._partitions.pop(ward, None)
            self._fed.pop(ward, None)
            self.monitor.forget(ward)
            self._published.pop(ward, None)
            self._unreported.discard(ward)
            self._unpublished.discard(ward)
            if self._reported.pop(ward, None) is not None:
                self._clear_gauges(ward)

    def _clear_gauges(self, ward: str) -> None:
        """Every series ``_set_gauges`` sets for ``ward``: the reference's inputs, by kind."""
        reference = self.monitor.reference
        inputs = [("measured", v) for v in reference.variables] + [("value", f.name) for f in reference.features]
        metrics.drop_ward_drift(ward)
        for kind, name in inputs:
            with contextlib.suppress(KeyError):
                metrics.DRIFT_PSI.remove(ward, kind, name)

    def record(self, report: WardDriftReport) -> WardDrift:
        measured = {f"{v} measured": v for v in self.monitor.reference.variables}  # WardDriftReport.top's names
        top = [
            DriftInput(input=measured[name], kind="measured", psi=psi)
            if name in measured
            else DriftInput(input=name, kind="value", psi=psi)
            for name, psi in report.top
        ]
        return WardDrift(
            ward=report.ward,
            at=datetime.now(UTC),
            patient_hours=report.patient_hours,
            patients=report.patients,
            max_psi=round(report.max_psi, 4),
            threshold=round(report.threshold, 4),
            drifted=report.drifted,
            top=top,
            reference=self.monitor.reference.source,
            model_version=self.bundle_version,
            worker=WORKER,
        )

    async def publish(self, publisher: Publisher, reports: Sequence[WardDriftReport]) -> None:
        for r in reports:
            await publisher.send(drift_topic, r.ward, self.record(r).model_dump_json().encode())
            if r.drifted:
                log.warning("ward.drifted", ward=r.ward, max_psi=round(r.max_psi, 3), inputs=[n for n, _ in r.top])


def first_closed(outcome: StepOutcome, firsts: Sequence[HourScore]) -> StepOutcome:
    """``outcome`` with only the closed hours of ``firsts`` (``models.stream_step.first_closings``:
    those that close for the first time) and their rows. A stay finalized anew (an observation older
    than its first re-anchors the window; a cancelled discharge folds the next stay back) closes every
    hour of its window again: its hours are in the ward's window already, and a patient-hour taken
    twice weighs its patient twice (22 hours in the window for 12 patient-hours)."""
    hours = {h.hour for h in firsts}
    keep = [i for i, h in enumerate(outcome.closed) if h.hour in hours]
    return dataclasses.replace(outcome, closed=[outcome.closed[i] for i in keep], closed_rows=outcome.closed_rows[keep])


def _set_gauges(r: WardDriftReport) -> None:
    for name, value in r.rate_psi.items():
        metrics.DRIFT_PSI.labels(r.ward, "measured", name).set(value)
    for name, value in r.value_psi.items():
        metrics.DRIFT_PSI.labels(r.ward, "value", name).set(value)
    metrics.DRIFT_MAX_PSI.labels(r.ward).set(r.max_psi)
    metrics.DRIFT_DRIFTED.labels(r.ward).set(1.0 if r.drifted else 0.0)
    metrics.DRIFT_PATIENT_HOURS.labels(r.ward).set(r.patient_hours)
    metrics.DRIFT_THRESHOLD.labels(r.ward).set(r.threshold)


@app.timer(interval=FLUSH_EVERY_S, name="drift.flush")
async def flush_drift() -> None:
    await publish_due_drift()


def owned_partitions() -> set[int] | None:
    """The partitions of the events topic this worker holds now (none: a worker of a group with more
    workers than partitions holds nothing, and judges no ward); None when it cannot say (a consumer
    not started, nothing scored yet). aiokafka's rebalance is eager and keeps the old assignment until
    the new one arrives: never empty in between."""
    try:
        return {tp.partition for tp in app.consumer.assignment() if tp.topic == topics.EVENTS_RAW}
    except Exception as exc:  # noqa: BLE001 - a consumer not started yet: judge nothing idle
        log.debug("drift.assignment_unknown", error=type(exc).__name__)
        return None


async def publish_due_drift() -> None:
    """The trailing edge of the throttle: wards whose window changed after their last report, once
    their interval has passed, without waiting for another batch (the ward may have gone quiet)."""
    rt = current_runtime()  # not built yet (no batch scored): nothing observed, nothing to say
    tracker = rt.drift if rt is not None else None
    if tracker is None:
        return
    reports = tracker.due(owned_partitions())
    if reports:
        publisher = Publisher(deadletter_topic)
        await tracker.publish(publisher, reports)
        await publisher.flush()
