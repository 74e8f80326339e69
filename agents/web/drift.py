"""The dashboard's ward-level drift indicator: the newest ``vigil.drift`` record of each ward (from
any worker: each describes the patients of its partitions), mirrored into the ``vigil_drift_*``
gauges of the dashboard's own /metrics."""

from __future__ import annotations

import threading
from typing import Any

from vigil.infra import metrics
from vigil.schemas.drift import WardDrift


class WardDriftBoard:
    def __init__(self) -> None:
        self._wards: dict[str, dict[str, Any]] = {}
        self._inputs: dict[str, set[tuple[str, str]]] = {}  # the (kind, input) series set per ward
        self._lock = threading.Lock()

    def apply(self, record: WardDrift) -> dict[str, Any]:
        """Keep the record as the ward's state; return the live-feed message."""
        view = record.model_dump(
            mode="json", include={"ward", "at", "patient_hours", "patients", "max_psi", "threshold", "drifted"}
        )
        view["top"] = [t.model_dump(mode="json") for t in record.top]
        with self._lock:
            self._wards[record.ward] = view
        metrics.DRIFT_MAX_PSI.labels(record.ward).set(record.max_psi)
        metrics.DRIFT_DRIFTED.labels(record.ward).set(1.0 if record.drifted else 0.0)
        metrics.DRIFT_PATIENT_HOURS.labels(record.ward).set(record.patient_hours)
        shown: set[tuple[str, str]] = {(t.kind, t.input) for t in record.top}
        with self._lock:  # an input out of the ward's top now: its series goes, not its old PSI
            for kind, name in self._inputs.get(record.ward, set()) - shown:
                metrics.DRIFT_PSI.remove(record.ward, kind, name)
            self._inputs[record.ward] = shown
        for t in record.top:
            metrics.DRIFT_PSI.labels(record.ward, t.kind, t.input).set(t.psi)
        return {"drift": self.snapshot()}

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {ward: dict(view) for ward, view in sorted(self._wards.items())}
