"""The dashboard's ward-level drift indicator: the newest ``vigil.drift`` record of each ward (from
any worker: each describes the patients of its partitions), mirrored into the ``vigil_drift_*``
gauges of the dashboard's own /metrics. A ward whose newest record is older than
``DriftSettings.stale_after_s`` is forgotten, its series with it: a worker says a ward it still judges
again every ``restate_every_s`` even when unchanged, and says nothing of a ward below its gate, so
silence means no worker judges the ward any more (its window fell below the gate, its workers were
scaled away, the ward closed). Kept, its last record said "drifted" for good. The feed runs ``expire``
on a timer (``feed.DRIFT_EXPIRE_EVERY_S``) and tells open pages: a silent ward brings no record to run
it on, and a read of the board only leaves the ward out of what it returns, never forgets it unsaid
(an open page kept the ward's "drifted" header for good)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from vigil.infra import metrics
from vigil.schemas.drift import WardDrift


class WardDriftBoard:
    def __init__(self, stale_after_s: float | None = None, clock: Callable[[], float] = time.time) -> None:
        if stale_after_s is None:
            from vigil.infra.settings import get_settings

            stale_after_s = get_settings().drift.stale_after_s
        self.stale_after_s = stale_after_s
        self._clock = clock  # wall-clock seconds, as the records' ``at``
        # each ward's shares: the newest record of each worker judging part of it (its partitions'
        # patients), with its time; the ward shows its most drifted share
        self._shares: dict[str, dict[str | None, tuple[float, dict[str, Any], WardDrift]]] = {}
        self._inputs: dict[str, set[tuple[str, str]]] = {}  # the (kind, input) series set per ward
        self._sent: dict[str, dict[str, Any]] = {}  # what the live feed last told open pages
        self._lock = threading.Lock()

    def apply(self, record: WardDrift) -> dict[str, Any]:
        """Keep the record as its worker's share of the ward; return the live-feed message. Kept as the
        ward's state, two workers' shares of one ward took turns: "drifted", then not, every restatement."""
        view = record.model_dump(
            mode="json", include={"ward", "at", "patient_hours", "patients", "max_psi", "threshold", "drifted"}
        )
        view["top"] = [t.model_dump(mode="json") for t in record.top]
        with self._lock:
            shares = self._shares.setdefault(record.ward, {})
            shares[record.worker] = (record.at.timestamp(), view, record)
            self._mirror(self._worst(shares)[1])
        self.expire()  # the message goes to every open page: what it leaves out, they forget
        self._sent = self.snapshot()
        return {"drift": self._sent}

    def unsent(self) -> dict[str, dict[str, Any]] | None:
        """The board as pages should show it, when that differs from what the live feed last told them
        (a ward forgotten, or a worker's share gone stale while another's stays: the ward's shown
        share changed though the ward is not gone); None when it does not."""
        now = self.snapshot()
        if now == self._sent:
            return None
        self._sent = now
        return now

    @staticmethod
    def _worst(shares: dict[str | None, tuple[float, dict[str, Any], WardDrift]]) -> tuple[dict[str, Any], WardDrift]:
        """The share the ward shows: drifted before not, then the largest PSI against its cut-off."""
        _, view, record = max(
            shares.values(), key=lambda s: (s[2].drifted, s[2].max_psi / s[2].threshold if s[2].threshold else 0.0)
        )
        return view, record

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """The wards some worker still reports, each as its most drifted share (a stale share is left
        out, forgotten by ``expire``)."""
        now = self._clock()
        with self._lock:
            out = {}
            for ward, shares in sorted(self._shares.items()):
                live = {w: s for w, s in shares.items() if not self._stale(s[0], now)}
                if live:
                    out[ward] = dict(self._worst(live)[0])
            return out

    def _stale(self, at: float, now: float) -> bool:
        return now - at > self.stale_after_s

    def expire(self) -> list[str]:
        """Forget the shares whose newest record is older than ``stale_after_s``, a ward with none left
        and its series, and mirror each ward's shown share into the gauges; return the wards forgotten
        (the feed then sends open pages the board without them). Run on every record and on the feed's
        timer."""
        now = self._clock()
        with self._lock:
            for shares in self._shares.values():
                for worker in [w for w, s in shares.items() if self._stale(s[0], now)]:
                    del shares[worker]
            stale = [w for w, shares in self._shares.items() if not shares]
            for ward in stale:
                del self._shares[ward]
                for kind, name in self._inputs.pop(ward, set()):
                    metrics.DRIFT_PSI.remove(ward, kind, name)
                metrics.drop_ward_drift(ward)
            for shares in self._shares.values():
                self._mirror(self._worst(shares)[1])
        return stale

    def _mirror(self, record: WardDrift) -> None:
        """The ward's shown share into the dashboard's gauges (called under the lock)."""
        metrics.DRIFT_MAX_PSI.labels(record.ward).set(record.max_psi)
        metrics.DRIFT_THRESHOLD.labels(record.ward).set(record.threshold)
        metrics.DRIFT_DRIFTED.labels(record.ward).set(1.0 if record.drifted else 0.0)
        metrics.DRIFT_PATIENT_HOURS.labels(record.ward).set(record.patient_hours)
        shown: set[tuple[str, str]] = {(t.kind, t.input) for t in record.top}
        for kind, name in self._inputs.get(record.ward, set()) - shown:  # out of the top: its series goes
            metrics.DRIFT_PSI.remove(record.ward, kind, name)
        self._inputs[record.ward] = shown
        for t in record.top:
            metrics.DRIFT_PSI.labels(record.ward, t.kind, t.input).set(t.psi)
