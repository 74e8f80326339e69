"""What each live worker serves, as it announces itself in Redis (``infra.fleet``): the bundle (its
version and the sha256 of its manifest, which pins every file), the alert threshold it serves for
its site, its consumer group and the partitions it holds. No patient data."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

FLEET_SCHEMA_VERSION = 1


class WorkerCard(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = FLEET_SCHEMA_VERSION
    worker: str = Field(max_length=200)  # host:pid
    host: str = Field(max_length=200)
    pid: int
    app_id: str = Field(max_length=200)  # the consumer group (a split deployment runs several)
    scoring: bool  # runs the scoring agent: its scores and alerts come from the bundle below
    partitions: int  # partitions of the scoring input (vigil.events.raw) it holds now
    # partitions of its agents' topics it holds with records waiting and no progress (agents/progress.py):
    # their patients' scores, alerts or acknowledgements wait until it reads them or leaves its group
    stalled_partitions: int = 0
    bundle_version: str | None = None  # None: no bundle loaded (rule scores only)
    bundle_sha256: str | None = None  # of the bundle's manifest.json
    state_tag: str | None = None
    alert_threshold: float | None = None  # the combined risk it alerts at (site rules applied)
    threshold_rule: str | None = None
    vigil_version: str
    started_at: datetime
    seen_at: datetime

    @property
    def serves(self) -> tuple[str | None, str | None, float | None]:
        """What decides this worker's scores and alerts: workers of one group that differ in it
        score patients differently, depending on which partition a patient's id falls in."""
        return (self.bundle_version, self.bundle_sha256, self.alert_threshold)
