"""The dashboard's fleet indicator: whether any worker is scoring, whether a worker holds partitions
it does not read (agents/progress.py), and whether the scoring workers of a consumer group serve
more than one bundle or alert threshold (``infra.fleet``: the cards the workers announce in Redis).
A clinician reading the ward must know when its scores have stopped moving, for all patients or for
some, or come from two models at once."""

from __future__ import annotations

from collections.abc import Sequence

from vigil.infra.fleet import TTL_S, mixed_groups, serving
from vigil.schemas.fleet import WorkerCard

FLEET_EVERY_S = 5.0


def fleet_indicators(cards: Sequence[WorkerCard]) -> dict[str, dict[str, str]]:
    """The header's fleet indicator (name -> text, level, title), or none when one configuration scores."""
    served = serving(cards)
    if not served:
        return {
            "fleet": {
                "level": "critical",
                "text": "No worker is scoring: scores and alerts are not being updated",
                "title": f"no scoring worker announced itself in the last {TTL_S} s: see `vigil workers`",
            }
        }
    # a scoring worker's stall holds patients' scores back; one of another group (a treatment group, a
    # split intake) delays what that group does, said as a warning: "scores are not being updated"
    # sent a clinician after a fault that was not there
    stalled = [c for c in cards if c.scoring and c.stalled_partitions]
    elsewhere = [c for c in cards if not c.scoring and c.stalled_partitions]
    if elsewhere and not stalled:
        return {
            "fleet": {
                "level": "warning",
                "text": "A worker outside the scoring group stopped reading its input",
                "title": (
                    f"{', '.join(f'{c.worker} ({c.app_id})' for c in elsewhere)}: its treatment scores or "
                    "intake wait; the worker leaves its group so another reads them (`vigil workers`)"
                ),
            }
        }
    if stalled:
        held = sum(c.stalled_partitions for c in stalled)
        return {
            "fleet": {
                "level": "critical",
                "text": "Some patients' scores are not being updated: a worker stopped reading its input",
                "title": (
                    f"{held} partition{'s' if held > 1 else ''} held by {', '.join(c.worker for c in stalled)} "
                    "with events waiting and none read; the worker leaves its group so another reads them "
                    "(`vigil workers`; its log: consumer.stalled)"
                ),
            }
        }
    mixed = mixed_groups(cards)
    if not mixed:
        return {}
    group = next(iter(mixed.values()))
    parts = [
        f"bundle {s.bundle_version} at threshold {s.alert_threshold} ({len(s.workers)} worker"
        + ("s" if len(s.workers) > 1 else "")
        + ")"
        for s in group
    ]
    return {
        "fleet": {
            "level": "warning",
            "text": f"Patients scored by {len(group)} bundles or thresholds at once",
            "title": "; ".join(parts) + ": a rollout under way, or a worker left behind (`vigil workers`)",
        }
    }
