"""The worker's drift tracker (agents/drift.py): every closed hour feeds the ward's window, but the
ward's PSI over all inputs is recomputed for the gauges at most every ``gauges_every_s``, and a
report is published at most every ``publish_every_s``."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from vigil.agents.drift import WardDriftTracker
from vigil.models.drift import WardDriftReport


class FakeMonitor:
    def __init__(self) -> None:
        self.reference = SimpleNamespace(variables=["HR"], features=[])
        self.observed_hours = 0
        self.report_calls: list[list[str]] = []
        self.forgotten: list[str] = []

    def observe(self, names: list[str], rows: Any, feats: Any, keys: Any) -> None:
        self.observed_hours += len(names)

    def forget(self, ward: str) -> None:
        self.forgotten.append(ward)

    def reports(self, wards: list[str]) -> list[WardDriftReport]:
        self.report_calls.append(list(wards))
        return [WardDriftReport(w, 300, 12, 0.2, {}, {}, 0.05, False) for w in wards]


def _outcome(hours: int) -> Any:
    hour = SimpleNamespace(features=np.zeros(3, np.float32))
    return SimpleNamespace(closed=[hour] * hours, closed_rows=np.zeros((hours, 2), np.float32))


def _observe(tracker: WardDriftTracker, *batch: Any) -> list[WardDriftReport]:
    """A batch's closed hours fed, then the reports due (what the scoring step and its timer do)."""
    return tracker.due() if tracker.feed(*batch) else []


def _tracker(now: list[float]) -> tuple[WardDriftTracker, FakeMonitor]:
    monitor = FakeMonitor()
    tracker = WardDriftTracker(monitor, "t", publish_every_s=30, gauges_every_s=1.0, clock=lambda: now[0])  # type: ignore[arg-type]
    return tracker, monitor


def test_every_closed_hour_is_observed_but_the_psi_is_recomputed_once_a_second() -> None:
    now = [100.0]
    tracker, monitor = _tracker(now)
    for _ in range(20):  # twenty batches within the same second
        _observe(tracker, ["p1", "p2"], ["icu-a", None], [_outcome(1), _outcome(2)])
        now[0] += 0.04
    assert monitor.observed_hours == 60
    assert monitor.report_calls == [["icu-a", "unknown"]]
    now[0] += 0.3  # a second after the first report: both changed since, both recomputed
    _observe(tracker, ["p1"], ["icu-a"], [_outcome(1)])
    assert monitor.report_calls[-1] == ["icu-a", "unknown"]
    now[0] += 1.0  # another second: only the ward that changed since
    _observe(tracker, ["p1"], ["icu-a"], [_outcome(1)])
    assert monitor.report_calls[-1] == ["icu-a"]


def test_a_ward_seen_for_the_first_time_is_reported_at_once() -> None:
    now = [100.0]
    tracker, monitor = _tracker(now)
    _observe(tracker, ["p1"], ["icu-a"], [_outcome(1)])
    _observe(tracker, ["p2"], ["icu-b"], [_outcome(1)])
    assert monitor.report_calls == [["icu-a"], ["icu-b"]]


def test_reports_are_published_at_most_every_publish_interval() -> None:
    now = [100.0]
    tracker, _ = _tracker(now)
    published = []
    for _ in range(140):  # 70 s of batches, two a second
        published += [r.ward for r in _observe(tracker, ["p1"], ["icu-a"], [_outcome(1)])]
        now[0] += 0.5
    assert published == ["icu-a"] * 3  # at 0 s, 30 s and 60 s


def test_a_batch_without_closed_hours_computes_nothing() -> None:
    tracker, monitor = _tracker([100.0])
    assert _observe(tracker, ["p1"], ["icu-a"], [_outcome(0)]) == []
    assert monitor.observed_hours == 0 and monitor.report_calls == []


def test_an_unusable_reference_turns_drift_off_and_the_worker_serves(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The scores do not depend on the drift reference: a worker whose reference makes no sense (or
    does not parse) logs ``drift.off``, shows 0 on ``vigil_drift_monitoring`` and goes on."""
    import json
    import shutil

    from vigil.infra import metrics
    from vigil.infra.settings import DriftSettings
    from vigil.models.bundle import STEPPING_DIR
    from vigil.models.drift import REFERENCE_FILE

    bundle = SimpleNamespace(artifacts_dir=tmp_path, version="t")
    shutil.copy(STEPPING_DIR / REFERENCE_FILE, tmp_path / REFERENCE_FILE)
    assert WardDriftTracker.for_bundle(bundle, DriftSettings()) is not None  # type: ignore[arg-type]
    assert metrics.DRIFT_MONITORING._value.get() == 1
    ref = json.loads((tmp_path / REFERENCE_FILE).read_text())
    ref["measurement_rate_per_hour"]["HR"] = 7.0
    (tmp_path / REFERENCE_FILE).write_text(json.dumps(ref))
    assert WardDriftTracker.for_bundle(bundle, DriftSettings()) is None  # type: ignore[arg-type]
    assert metrics.DRIFT_MONITORING._value.get() == 0
    (tmp_path / REFERENCE_FILE).write_text("{")
    assert WardDriftTracker.for_bundle(bundle, DriftSettings()) is None  # type: ignore[arg-type]


def test_a_ward_that_goes_quiet_is_reported_with_its_latest_window() -> None:
    """The throttle's trailing edge: the first report came from a window of a few hours; the hours
    that closed after it (within the interval) are reported once the interval has passed, by the
    worker's timer, though no batch comes; then nothing more until the window changes again."""
    now = [100.0]
    tracker, monitor = _tracker(now)
    first = _observe(tracker, ["p1"], ["icu-a"], [_outcome(1)])
    assert [r.ward for r in first] == ["icu-a"]
    for _ in range(10):  # the rest of the replay, within the publish interval
        now[0] += 1.0
        assert _observe(tracker, ["p1"], ["icu-a"], [_outcome(5)]) == []
    now[0] += 5.0
    assert tracker.due() == []  # 15 s after the report: not yet
    calls = len(monitor.report_calls)
    now[0] += 16.0
    assert [r.ward for r in tracker.due()] == ["icu-a"]  # 31 s: the window's latest state
    assert len(monitor.report_calls) == calls + 1
    now[0] += 60.0
    assert tracker.due() == [] and len(monitor.report_calls) == calls + 1  # unchanged: said once


def test_the_workers_timer_publishes_what_is_due(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """``flush_drift`` (``publish_due_drift`` every 5 s): the quiet ward's latest report goes to
    vigil.drift; before the runtime is built (no batch scored yet) the timer does nothing."""
    import asyncio

    from vigil.agents import drift

    sent: list[tuple[str, bytes]] = []

    class FakePublisher:
        def __init__(self, deadletter: Any) -> None:
            pass

        async def send(self, topic: Any, key: Any, value: bytes) -> None:
            sent.append((key, value))

        async def flush(self) -> None:
            sent.append(("flushed", b""))

    now = [100.0]
    tracker, _ = _tracker(now)
    tracker.monitor.reference = SimpleNamespace(variables=[], source="test")  # type: ignore[attr-defined]
    monkeypatch.setattr(drift, "Publisher", FakePublisher)
    monkeypatch.setattr(drift, "current_runtime", lambda: None)
    asyncio.run(drift.publish_due_drift())
    assert sent == []
    monkeypatch.setattr(drift, "current_runtime", lambda: SimpleNamespace(drift=tracker))
    _observe(tracker, ["p1"], ["icu-a"], [_outcome(1)])  # reported at once (a new ward)
    now[0] += 5.0
    _observe(tracker, ["p1"], ["icu-a"], [_outcome(3)])  # within the interval: not published
    asyncio.run(drift.publish_due_drift())
    assert sent == []
    now[0] += 30.0
    asyncio.run(drift.publish_due_drift())
    assert [key for key, _ in sent] == ["icu-a", "flushed"]
    assert b'"patient_hours":300' in sent[0][1]


def test_a_feed_naming_a_new_ward_per_message_keeps_memory_bounded() -> None:
    # each ward's window is ~170 kB: 10,000 names took 1.7 GB; later names are counted as "other"
    from vigil.agents.drift import OTHER_WARDS, WardNames

    names = WardNames(limit=3)
    seen: list[str] = []
    monitor = FakeMonitor()
    monitor.observe = lambda wards, *_: seen.extend(wards)  # type: ignore[method-assign]
    now = [100.0]
    tracker = WardDriftTracker(monitor, "t", 30, 1.0, lambda: now[0], ward_names=names)  # type: ignore[arg-type]
    for i in range(50):
        _observe(tracker, [f"p{i}"], [f"WARD-{i}"], [_outcome(1)])
    assert set(seen) == {"WARD-0", "WARD-1", "WARD-2", OTHER_WARDS}
    assert names("WARD-1") == "WARD-1" and names(None) == OTHER_WARDS  # "unknown" came too late


def test_a_ward_that_falls_below_the_gate_no_longer_shows_its_old_drift() -> None:
    from prometheus_client import REGISTRY

    now = [100.0]
    monitor = FakeMonitor()
    gate = {"open": True}
    monitor.reports = lambda wards: (  # type: ignore[method-assign]
        [WardDriftReport(w, 300, 12, 0.9, {"HR": 0.9}, {}, 0.5, True) for w in wards] if gate["open"] else []
    )
    tracker = WardDriftTracker(monitor, "t", 30, 1.0, lambda: now[0])  # type: ignore[arg-type]
    _observe(tracker, ["p1"], ["icu-gate"], [_outcome(1)])
    assert REGISTRY.get_sample_value("vigil_drift_drifted", {"ward": "icu-gate"}) == 1.0
    gate["open"] = False  # the window now holds too few patients: no report
    now[0] += 2.0
    _observe(tracker, ["p1"], ["icu-gate"], [_outcome(1)])
    assert REGISTRY.get_sample_value("vigil_drift_drifted", {"ward": "icu-gate"}) is None
    labels = {"ward": "icu-gate", "kind": "measured", "input": "HR"}
    assert REGISTRY.get_sample_value("vigil_drift_psi", labels) is None


def test_a_reference_drawn_over_long_windows_only_judges_no_ward_before_it_holds_as_many_hours(
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """A null table drawn by patients alone over 2,000-hour windows, read at 200 hours, called 15 % of
    steady 20-patient wards drifted (28 % of 40-patient ones): after each restart a quarter to a third
    of healthy wards paged. Such a reference judges a ward from 2,000 hours on; the shipped one, drawn
    from 200 hours on, keeps the settings' gate."""
    import json
    import shutil

    from vigil.infra.settings import DriftSettings
    from vigil.models.bundle import STEPPING_DIR
    from vigil.models.drift import REFERENCE_FILE

    bundle = SimpleNamespace(artifacts_dir=tmp_path, version="t")
    shutil.copy(STEPPING_DIR / REFERENCE_FILE, tmp_path / REFERENCE_FILE)
    shipped = WardDriftTracker.for_bundle(bundle, DriftSettings())  # type: ignore[arg-type]
    assert shipped is not None and (shipped.monitor.min_hours, shipped.monitor.min_patients) == (200, 10)
    ref = json.loads((tmp_path / REFERENCE_FILE).read_text())
    ref["null_max_psi"] = {"patients": [10, 20, 40], "q99": [3.13, 1.74, 0.91], "window_hours": 2000}
    (tmp_path / REFERENCE_FILE).write_text(json.dumps(ref))
    legacy = WardDriftTracker.for_bundle(bundle, DriftSettings())  # type: ignore[arg-type]
    assert legacy is not None and legacy.monitor.min_hours == 2000
    # an operator's own gate (VIGIL_DRIFT__MIN_HOURS: a small ward, a short demo) is honoured, below the
    # table too (its wards read at the table's edge): raised, the demo's worker showed no drift at all
    small = WardDriftTracker.for_bundle(bundle, DriftSettings(min_hours=10, min_patients=1))  # type: ignore[arg-type]
    assert small is not None and (small.monitor.min_hours, small.monitor.min_patients) == (10, 1)
    # field by field: a stricter hours gate leaves the patients' gate raised to the table's smallest ward
    ref["null_max_psi"] = {"patients": [40, 80], "q99": [0.91, 0.6], "window_hours": 2000}
    (tmp_path / REFERENCE_FILE).write_text(json.dumps(ref))
    stricter = WardDriftTracker.for_bundle(bundle, DriftSettings(min_hours=3000))  # type: ignore[arg-type]
    assert stricter is not None and (stricter.monitor.min_hours, stricter.monitor.min_patients) == (3000, 40)


def test_a_ward_still_judged_is_said_again_though_unchanged_and_one_below_the_gate_is_not() -> None:
    """The dashboard forgets a ward no worker has said anything of for a while: a worker says a ward
    it judges again every ``restate_every_s``, and says nothing of one that fell below its gate."""
    now = [100.0]
    monitor = FakeMonitor()
    tracker = WardDriftTracker(monitor, "t", 30, 1.0, lambda: now[0], restate_every_s=120)  # type: ignore[arg-type]
    assert [r.ward for r in _observe(tracker, ["p1", "p2"], ["icu-a", "icu-b"], [_outcome(1), _outcome(1)])] == [
        "icu-a",
        "icu-b",
    ]
    now[0] += 60.0
    assert tracker.due() == []  # unchanged and said a minute ago
    now[0] += 61.0
    judged = monitor.reports
    monitor.reports = lambda wards: [r for r in judged(wards) if r.ward == "icu-a"]  # type: ignore[method-assign]
    assert [r.ward for r in tracker.due()] == ["icu-a"]  # icu-b fell below the gate: nothing to say
    now[0] += 121.0
    assert [r.ward for r in tracker.due()] == ["icu-a"]  # and icu-b is not asked about again
    assert monitor.report_calls[-1] == ["icu-a"]


def test_a_ward_whose_patients_left_this_worker_is_forgotten() -> None:
    """A rebalance moved the ward's partitions to another worker: this one kept its frozen window and
    said it, "drifted" maybe, every two minutes for good (the dashboard showed the most drifted share:
    the frozen one), and its gauges, which the workers' alert reads, stood as they were. A ward charted
    in rounds every 4 h closes no hour for hours, and is still the worker's: judged by the partitions
    its hours came from, not by time."""
    from prometheus_client import REGISTRY

    now = [100.0]
    monitor = FakeMonitor()
    tracker = WardDriftTracker(monitor, "t", 30, 1.0, lambda: now[0], restate_every_s=120)  # type: ignore[arg-type]
    tracker.feed(["p1", "p2"], ["icu-moved", "icu-kept"], [_outcome(1), _outcome(1)], [3, 5])
    assert [r.ward for r in tracker.due({3, 5})] == ["icu-kept", "icu-moved"]
    assert REGISTRY.get_sample_value("vigil_drift_max_psi", {"ward": "icu-moved"}) is not None
    now[0] += 6 * 3600.0  # a round every 4 h: no hour closed here for hours, the partitions still held
    assert [r.ward for r in tracker.due({3, 5})] == ["icu-kept", "icu-moved"]
    assert [r.ward for r in tracker.due(None)] == []  # not known (no consumer yet): nothing forgotten
    now[0] += 121.0
    assert [r.ward for r in tracker.due({5})] == ["icu-kept"]  # partition 3 went to another worker
    assert REGISTRY.get_sample_value("vigil_drift_max_psi", {"ward": "icu-moved"}) is None
    assert monitor.forgotten == ["icu-moved"]  # its window too: a ward seen again starts afresh
    now[0] += 121.0
    assert [r.ward for r in tracker.due({5})] == ["icu-kept"]
    tracker.feed(["p3"], ["icu-moved"], [_outcome(1)], [5])  # a patient of the ward on a partition held here
    assert [r.ward for r in tracker.due({5})] == ["icu-moved"]
    # a worker left holding no partition (more workers than partitions) judges no ward
    assert tracker.due(set()) == [] and REGISTRY.get_sample_value("vigil_drift_max_psi", {"ward": "icu-kept"}) is None


def test_a_ward_without_an_hour_for_a_day_is_forgotten() -> None:
    """A ward closed, renamed or emptied while the worker keeps its partitions for other wards: its
    window, counted in hours, never fell below the gate, and was said again, "drifted" maybe, for good."""
    from prometheus_client import REGISTRY

    from vigil.agents.drift import IDLE_AFTER_S

    now = [100.0]
    monitor = FakeMonitor()
    tracker = WardDriftTracker(monitor, "t", 30, 1.0, lambda: now[0], restate_every_s=120)  # type: ignore[arg-type]
    tracker.feed(["p1", "p2"], ["icu-old", "icu-b"], [_outcome(1), _outcome(1)], [3, 3])
    assert [r.ward for r in tracker.due({3})] == ["icu-b", "icu-old"]
    now[0] += IDLE_AFTER_S - 60  # rounds every few hours: still the ward's
    tracker.feed(["p2"], ["icu-b"], [_outcome(1)], [3])
    assert [r.ward for r in tracker.due({3})] == ["icu-b", "icu-old"]
    now[0] += 120
    assert [r.ward for r in tracker.due({3})] == ["icu-b"]
    assert REGISTRY.get_sample_value("vigil_drift_max_psi", {"ward": "icu-old"}) is None
    assert monitor.forgotten == ["icu-old"]
