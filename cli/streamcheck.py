"""`vigil replay`: streaming equals offline. Challenge-format stays go through Kafka and the
full pipeline; every hourly score is compared with `vigil predict` on the same files.

The producer sends a stay hour by hour and waits for each hour's provisional score, like an hourly
bedside feed. When the next hour's events arrive the hour closes and the worker publishes its
*final* score (``status: final``): every closed hour is compared through its final score, the
stay's last hour (never closed) through its newest provisional score. The combined risk is compared
with `vigil predict`'s output files; the deterioration score (which the alerts do not use, and
which the stream computes from whole windows for a window model) with the bundle's offline
``stay_risks`` on the same stays (``deterioration_*`` in the summary).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from vigil.infra.connect import consumer_from_now, kafka_producer
from vigil.infra.replay import Stay, load_stays, stay_events
from vigil.infra.settings import Settings
from vigil.infra.stack import stack_up
from vigil.infra.workers import spawn_worker, stop_worker
from vigil.models.bundle_check import TOLERANCE
from vigil.models.hour_zero import first_measured_row
from vigil.schemas import topics


def offline_scores(files: list[Path], bundle_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every hour's combined risk, as `vigil predict` writes it, and deterioration score, from the
    same pass of the bundle in ``bundle_dir`` (the one the worker serves)."""
    from vigil.models.offline import predict_dir

    deterioration: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as src, tempfile.TemporaryDirectory() as out:
        for f in files:
            (Path(src) / f.name).symlink_to(f.resolve())
        predict_dir(
            src,
            out,
            artifacts_dir=bundle_dir,
            on_stay=lambda path, risk: deterioration.update({path.stem: risk.deterioration}),
        )
        probs = {}
        for f in files:
            rows = (Path(out) / f.name).read_text().strip().split("\n")[1:]
            probs[f.stem] = np.array([float(r.split("|")[0]) for r in rows])
    return probs, deterioration


def run_replay_check(settings: Settings, data_dir: Path, limit: int, timeout_s: float = 600) -> dict[str, Any]:
    files = sorted(data_dir.glob("*.psv"))[:limit]
    stays: list[Stay] = load_stays(files)
    from vigil.models.stream_step import served_bundle_dir

    offline, offline_seq = offline_scores(files, served_bundle_dir(settings.bundle_dir))
    stack_up(settings)
    run = str(int(time.time()))
    scores: dict[tuple[str, int], list[float]] = defaultdict(list)
    finals: dict[tuple[str, int], float] = {}
    seq_scores: dict[tuple[str, int], list[float]] = defaultdict(list)
    seq_finals: dict[tuple[str, int], float] = {}
    scored_ids: set[str] = set()
    lock = threading.Lock()
    consumer = consumer_from_now(settings, (topics.SCORES,))
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=100).values():
                for r in records:
                    data = json.loads(r.value)
                    by_model = {m["model"]: m["probability"] for m in data["models"]}
                    key = (data["patient_id"], data["hour"])
                    final = data.get("status") == "final"
                    with lock:
                        scored_ids.update(data["event_ids"])
                        for model, last, every in (
                            ("combined", finals, scores),
                            ("deterioration", seq_finals, seq_scores),
                        ):
                            if model in by_model and final:
                                last[key] = by_model[model]
                            elif model in by_model:
                                every[key].append(by_model[model])

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    producer = kafka_producer(settings, linger_ms=1)  # before the worker: nothing between it and its finally
    worker_log = settings.home / "logs" / "replay-worker.log"
    worker = spawn_worker(settings, worker_log)
    expected: dict[str, str] = {}
    event_hours: dict[str, set[int]] = {}
    waits_timed_out = 0
    t0 = time.time()
    try:
        from datetime import UTC, datetime, timedelta

        for stay in stays:
            pid = f"r{run}-{stay.patient_id}"
            renamed = Stay(pid, stay.matrix, stay.static, stay.labels)
            base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=len(stay.matrix) + 1)
            by_hour: dict[int, list[Any]] = defaultdict(list)
            for hour, event in stay_events(renamed, base):
                by_hour[hour].append(event)
            event_hours[pid] = set(by_hour)
            for hour in sorted(by_hour):
                ids = {e.event_id for e in by_hour[hour]}
                for e in by_hour[hour]:
                    producer.send(topics.EVENTS_RAW, key=pid.encode(), value=e.model_dump_json().encode())
                producer.flush()
                deadline = time.time() + 60
                while True:
                    with lock:
                        if ids <= scored_ids:
                            break
                    if time.time() > deadline:
                        waits_timed_out += 1  # the worker did not score the hour within a minute
                        break
                    time.sleep(0.01)
                expected[pid] = stay.patient_id
            if time.time() - t0 > timeout_s:
                break
        time.sleep(0.5)
    finally:
        producer.close()
        stop_worker(worker)
        stop.set()
        thread.join(timeout=5)
        consumer.close()
    # the stream's hour 0 is a stay's first measurement, its file's row ``start`` (models.hour_zero)
    starts = {f"r{run}-{stay.patient_id}": first_measured_row(stay.matrix) for stay in stays}
    seq = compare_with_offline(expected, event_hours, offline_seq, seq_finals, seq_scores, starts)
    return {
        **compare_with_offline(expected, event_hours, offline, finals, scores, starts),
        # the stays there were to send: ``patients`` falls short of it when the timeout cut the replay off
        "stays_asked": len(stays),
        "timeout_s": timeout_s,
        "worker_log": str(worker_log),
        "deterioration_hours_compared": seq["hours_compared"],
        "deterioration_hours_without_stream_score": seq["hours_without_stream_score"],
        "deterioration_stream_scores_not_finite": seq["stream_scores_not_finite"],
        "deterioration_max_abs_diff": seq["max_abs_diff"],
        "deterioration_mean_abs_diff": seq["mean_abs_diff"],
        "hour_waits_timed_out": waits_timed_out,
        "seconds": round(time.time() - t0, 1),
    }


def compare_with_offline(
    expected: dict[str, str],
    event_hours: dict[str, set[int]],
    offline: dict[str, np.ndarray],
    finals: dict[tuple[str, int], float],
    scores: dict[tuple[str, int], list[float]],
    starts: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Every hour of every replayed stay against `vigil predict`: a closed hour through its final
    score, an hour without one (the stay's open last hour) through its newest provisional score; an
    hour with events but no score at all is counted and named (``unscored_hours``, stay and hour).
    The stream's hour ``h`` is the file's row ``starts[pid] + h`` (its first measured row is hour 0,
    ``models.hour_zero``); the rows before it, which hold no measurement (a replay sends the age and
    sex there), are compared with nothing, as rows without events. The differences are NaN when no
    hour was compared (``--json`` writes null: no figure, not a match)."""
    diffs, final_diffs = [], []
    closed_without_final = 0
    unscored: list[list[Any]] = []
    silent = 0  # hours whose row has no measurement at all: nothing the stream scores
    for pid, stem in expected.items():
        last = max(event_hours[pid], default=-1)
        start = 0 if starts is None else starts[pid]
        for hour, p_off in enumerate(offline[stem]):
            if hour not in event_hours[pid] or hour < start:
                silent += 1
                continue
            key = (pid, hour - start)
            if key in finals:
                final_diffs.append(abs(finals[key] - p_off))
                diffs.append(final_diffs[-1])
                continue
            closed_without_final += hour < last
            streamed = scores.get(key)
            if not streamed:
                unscored.append([stem, hour])
                continue
            diffs.append(abs(streamed[-1] - p_off))
    not_finite = int(np.count_nonzero(~np.isfinite(diffs))) if diffs else 0
    return {
        "patients": len(expected),
        "hours_offline": int(sum(len(offline[s]) for s in expected.values())),
        "hours_compared": len(diffs),
        "hours_final": len(final_diffs),
        "closed_hours_without_final": closed_without_final,
        "hours_without_events": silent,
        "hours_without_stream_score": len(unscored),
        "unscored_hours": unscored[:20],
        "stream_scores_not_finite": not_finite,
        "max_abs_diff": _worst(diffs),
        "max_abs_diff_final": _worst(final_diffs),
        "mean_abs_diff": float(np.mean(diffs)) if diffs else float("nan"),
    }


def _worst(diffs: list[float]) -> float:
    """The largest difference; NaN when nothing was compared (``--json`` writes it as null), and NaN
    too when a stream score was not a number (np.max keeps it, where np.nanmax would pass it over:
    ``stream_scores_not_finite`` counts those hours)."""
    return float(np.max(diffs)) if diffs else float("nan")


def cut_off_problem(result: dict[str, Any]) -> str:
    """What to say of a replay its timeout stopped before every stay was sent, and what to do."""
    timeout = result.get("timeout_s")
    after = f" after {timeout:.0f} s" if isinstance(timeout, int | float) else ""
    log = result.get("worker_log") or "the replay worker's log"
    return (
        f"only {result.get('patients', 0)} of {result['stays_asked']} stays compared: the replay was cut off"
        f"{after}; replay fewer stays (--limit) or see why the worker scores slowly ({log})"
    )


def replay_problems(result: dict[str, Any], tolerance: float = TOLERANCE) -> list[str]:
    """What makes a replay check fail, in words (none: the stream equals `vigil predict`): an hour
    the stream never scored, a score that is not a number, a difference above ``tolerance`` (the
    bundle check's), nothing compared at all, or fewer stays compared than there were to send (the
    replay stopped at its timeout: the hours it compared may all be equal, and still it checked less
    than it was asked to). A check that printed its figures and exited 0 whatever they were was no
    check for a script or CI to run."""
    problems = []
    if result.get("stays_asked", 0) > result.get("patients", 0):
        problems.append(cut_off_problem(result))
    for prefix, what in (("", "combined"), ("deterioration_", "deterioration")):
        if prefix + "hours_compared" in result and not result[prefix + "hours_compared"]:
            problems.append(f"no {what} hour was compared")
        if result.get(prefix + "hours_without_stream_score"):
            problems.append(f"{result[prefix + 'hours_without_stream_score']} hours without a {what} stream score")
        if result.get(prefix + "stream_scores_not_finite"):
            problems.append(f"{result[prefix + 'stream_scores_not_finite']} {what} stream scores not a number")
        worst = result.get(prefix + "max_abs_diff")
        if isinstance(worst, float) and worst == worst and not worst <= tolerance:
            problems.append(f"{what} differs from vigil predict by {worst:.2e} (> {tolerance:.0e})")
    return problems
