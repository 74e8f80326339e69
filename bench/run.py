"""`vigil bench`: the full pipeline against bare Faust on the same broker, in one run.

Throughput is measured the same way for both: N events are preloaded into the input topic, the
worker is started, and events/s = N / (last output timestamp - first output timestamp), from the
Kafka timestamps of the output messages; a phase ends when every event is scored or dead-lettered
(one that times out divides the events it accounted for, and says so in the run's ``warnings``).
Latency is measured at a fixed offered rate with the pipeline running: per event, (timestamp of the
first score that includes it) - (its produce timestamp). A score's timestamp is its CreateTime, set
by the worker's producer when it sends the score: the score's linger, the broker's acknowledgement
and a subscriber's fetch come after it (``received_*``: when the bench's own consumer read the
score). Batch speedup times the deployed ONNX models in-process at batch 1 and 64.

No phase inherits another's backlog: the run starts by having the groups read what an earlier run
left on their input topics, each point of the workers curve starts once its group has read
everything, and the MLLP phase (events on ``vigil.events.raw`` with no worker running) comes last.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from vigil.bench.batch_curve import batch_curve_or_why_not, no_curve, plot_curve
from vigil.bench.harness import (
    ALL_AGENTS,
    BASELINE_GROUP,
    BASELINE_IN,
    BASELINE_OUT,
    BENCH_APP_ID,
    PIPELINE_AGENTS,
    DeadLetterWatch,
    OutputWatch,
    drain_backlog,
    events_per_s,
    preload,
    quiet_collector,
    rss_mb,
    settle,
    settled,
    spawn_baseline,
    spawn_pipeline,
    unless_ended,
    unsettled_phases,
    wait_until,
)
from vigil.bench.mllp import measure_mllp
from vigil.bench.scaleout import (
    BENCH_PARTITIONS,
    SCALED_TOPICS,
    grow_partitions,
    latency_with_workers,
    with_partitions,
    workers_curve,
)
from vigil.bench.usage import Usage, sample, usage_between
from vigil.infra.connect import kafka_producer, redis_client
from vigil.infra.dataset import ensure_dataset
from vigil.infra.replay import Stay, pick_stays, stay_events
from vigil.infra.settings import Settings
from vigil.infra.stack import stack_up
from vigil.infra.stack.topics import ensure_topics
from vigil.infra.workers import stop_worker
from vigil.schemas import topics


def bench_events(stays: list[Stay], n: int) -> list[tuple[str, bytes, bytes]]:
    """(event_id, key, value) for n events, interleaving many patients hour by hour; fresh
    patient ids per run so earlier runs' Redis state does not interfere."""
    run = uuid.uuid4().hex[:6]
    longest = max(len(s.matrix) for s in stays)
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=longest + 1)
    rows: list[tuple[int, str, bytes, bytes]] = []
    for stay in stays:
        renamed = Stay(f"b{run}-{stay.patient_id}", stay.matrix, stay.static, stay.labels)
        for hour, event in stay_events(renamed, base):
            rows.append((hour, event.event_id, renamed.patient_id.encode(), event.model_dump_json().encode()))
    rows.sort(key=lambda r: r[0])
    return [(eid, k, v) for _, eid, k, v in rows[:n]]


def measure_baseline(settings: Settings, n: int, messages: list[tuple[bytes, bytes]], log_dir: Path) -> dict[str, Any]:
    ensure_topics(settings, (BASELINE_IN, BASELINE_OUT))
    watch = OutputWatch(settings, BASELINE_OUT).start()
    log = log_dir / "bench-baseline.log"
    proc = None
    try:
        preload(settings, BASELINE_IN, messages)
        proc = spawn_baseline(settings, log)
        ok = wait_until(unless_ended(lambda: watch.count >= n, [(proc, log)]), timeout=300)
    finally:
        if proc is not None:
            stop_worker(proc)
        watch.stop()
    span = ((watch.last_ts or 0) - (watch.first_ts or 0)) / 1000.0
    return {
        "events": watch.count,
        "complete": ok,
        "seconds": span,
        "events_per_s": events_per_s(min(watch.count, n), span),
    }


def measure_pipeline(
    settings: Settings,
    n: int,
    events: list[tuple[str, bytes, bytes]],
    log_dir: Path,
    agents: tuple[str, ...] = PIPELINE_AGENTS,
) -> tuple[dict[str, Any], Any]:
    ids = {eid for eid, _, _ in events}
    seen: set[str] = set()

    def absorb(record: Any) -> None:
        seen.update(json.loads(record.value)["event_ids"])

    watch = OutputWatch(settings, topics.SCORES, on_record=absorb).start()
    dead = DeadLetterWatch(settings).start()
    log = log_dir / "bench-pipeline.log"
    proc = None
    peak_rss = 0.0
    before: Usage | None = None
    try:
        preload(
            settings,
            topics.EVENTS_RAW,
            [(k, v) for _, k, v in events],
            on_ack=lambda metadata, index: dead.acknowledged(metadata, events[index][0]),
        )
        proc = worker = spawn_pipeline(settings, log, agents=agents)

        def done() -> bool:
            nonlocal peak_rss, before
            peak_rss = max(peak_rss, rss_mb(worker.pid))
            if before is None and watch.count:  # from the first score on: the worker's start-up left out
                before = sample(settings, [worker.pid])
            # an event ingest dead-letters is never scored: waiting for its score ran out the timeout
            return settled(ids, seen, dead.by_event())

        ok = wait_until(unless_ended(done, [(worker, log)]), timeout=600)
        after = sample(settings, [proc.pid])
    except BaseException:  # Ctrl-C, SIGTERM (stop_on_signals), a worker that died: it runs in its own session
        if proc is not None:
            stop_worker(proc)
        raise
    finally:
        watch.stop()
        dead.stop()
    span = ((watch.last_ts or 0) - (watch.first_ts or 0)) / 1000.0
    dead_lettered, unaccounted = settle(ids, seen, dead.by_event())
    result = {
        "events": len(ids & seen),
        "complete": ok,
        "seconds": span,
        "scores": watch.count,
        "dead_lettered": dead_lettered,
        "unaccounted": unaccounted,
        "events_per_s": events_per_s(n - unaccounted, span),
        "worker_peak_rss_mb": round(peak_rss, 1),
        "usage": usage_between(before, after, n) if before else None,
    }
    return result, proc


def measure_latency(settings: Settings, events: list[tuple[str, bytes, bytes]], rate: float) -> dict[str, Any]:
    produced: dict[str, int] = {}
    acked: dict[str, int] = {}
    scored: dict[str, int] = {}
    received: dict[str, int] = {}  # when the bench's consumer read the score (its CreateTime is earlier)
    dead_watch = DeadLetterWatch(settings)

    def absorb(record: Any) -> None:
        now_ms = int(time.time() * 1000)
        for eid in json.loads(record.value)["event_ids"]:
            scored.setdefault(eid, record.timestamp)
            received.setdefault(eid, now_ms)

    def on_ack(metadata: Any, eid: str) -> None:
        acked.setdefault(eid, int(time.time() * 1000))
        dead_watch.acknowledged(metadata, eid)

    watch = OutputWatch(settings, topics.SCORES, on_record=absorb).start()
    dead_watch.start()
    producer = kafka_producer(settings, linger_ms=1)
    with quiet_collector() as collector:
        t0 = time.perf_counter()
        for i, (eid, key, value) in enumerate(events):
            target = t0 + i / rate
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            ts = int(time.time() * 1000)
            produced[eid] = ts
            future = producer.send(topics.EVENTS_RAW, key=key, value=value, timestamp_ms=ts)
            future.add_callback(on_ack, eid=eid)
        producer.flush()
        offered_s = time.perf_counter() - t0
        # every event ends scored or dead-lettered: wait for all of them, not for the timeout
        wait_until(lambda: settled(produced, scored, dead_watch.by_event()), timeout=120)
    watch.stop()
    dead_watch.stop()
    producer.close()
    lat = np.array([scored[e] - produced[e] for e in produced if e in scored], dtype=float)
    at_receipt = np.array([received[e] - produced[e] for e in produced if e in received], dtype=float)
    # the load generator's own share: produce -> broker acknowledgement (kafka-python, acks=all)
    ack = np.array([acked[e] - produced[e] for e in produced if e in acked], dtype=float)
    dead_lettered, unaccounted = settle(produced.keys(), scored.keys(), dead_watch.by_event())
    return {
        "offered_rate": rate,
        "achieved_offer_rate": round(len(events) / offered_s, 1),
        "events": len(events),
        "scored": int(len(lat)),
        "dead_lettered": dead_lettered,
        "unaccounted": unaccounted,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
        "max_ms": float(lat.max()) if len(lat) else None,
        # the same, ending when the bench's consumer read the score (its linger, the broker's ack,
        # the fetch, and this process' own scheduling beside the generator's sends)
        "received_p50_ms": float(np.percentile(at_receipt, 50)) if len(at_receipt) else None,
        "received_p99_ms": float(np.percentile(at_receipt, 99)) if len(at_receipt) else None,
        "produce_ack_p50_ms": float(np.percentile(ack, 50)) if len(ack) else None,
        "produce_ack_p99_ms": float(np.percentile(ack, 99)) if len(ack) else None,
        # the load generator's garbage collections while it offered and watched (its process
        # shares the machine's cores with the worker)
        "generator_gc": collector.summary(),
    }


def per_model_lines(curve: dict[str, Any]) -> dict[str, dict[int, float]]:
    """The batch curve's per-session lines (``plot_curve``'s ``per_model``), where measured."""
    names = {
        "step_us_per_sample": "sequence model (a GRU step, or the attention encoder's windows)",
        "tree_us_per_sample": "tree model",
        "contrib_us_per_sample": "tree contributions graph",
    }
    return {label: {int(k): v for k, v in curve[key].items()} for key, label in names.items() if curve.get(key)}


def redis_bytes_per_patient(settings: Settings, patients: set[str]) -> dict[str, Any]:
    """Redis MEMORY USAGE of everything Vigil keeps per patient (window, stepping carry with the
    recurrent states, alert and care state): mean, p99 and max over the patients."""
    from vigil.infra.redis import alert_key, care_key, carry_key, window_key

    client = redis_client(settings)
    sizes = [
        sum(client.memory_usage(key) or 0 for key in (window_key(p), carry_key(p), alert_key(p), care_key(p)))
        for p in patients
    ]
    client.close()
    per = np.array(sizes or [0], dtype=float)
    return {
        "patients": len(patients),
        "bytes_per_patient": round(float(per.mean()), 1),
        "p99_bytes": round(float(np.percentile(per, 99)), 1),
        "max_bytes": int(per.max()),
    }


def data_shortfall(
    patients: int, stays: int, n_events: int, events: int, latency_events: int, offered: int, rate: float
) -> list[str]:
    """What the data could not give of what the run asked for, a sentence each: a figure from fewer
    patients or a shorter latency phase than asked reads as the asked one's unless it says so (the
    shipped sample's 100 stays hold 34,470 events: 34 s of the default 60 s at 1,000 events/s)."""
    warnings = []
    if stays < patients:
        warnings.append(f"{patients} patients asked, the data holds {stays} stays: every phase used those")
    if events < n_events:
        warnings.append(f"{n_events:,} events asked for the throughput phases, the data holds {events:,}")
    if offered < latency_events:
        warnings.append(
            f"the latency phase offered {offered:,} events ({offered / rate:.0f} s at {rate:g}/s), not "
            f"{latency_events:,}: the data holds no more"
        )
    return warnings


def run_bench(
    settings: Settings,
    n_events: int,
    rate: float,
    latency_s: float,
    patients: int,
    plot_path: Path | None,
    quick: bool = False,
    workers: list[int] | None = None,
    partitions: int = BENCH_PARTITIONS,
) -> dict[str, Any]:
    """``quick``: only the pipeline against the baseline, the latency run and the Redis size (no
    run with the treatment agent, no batch curve): every client of the bench, in a minute.
    ``workers``: the worker counts of the scale-out curve (``bench.scaleout``); its topics get
    ``partitions`` partitions, and so every phase of the run uses the same layout."""
    if workers:
        settings = with_partitions(settings, partitions)
    stack_up(settings)
    if workers:
        grow_partitions(settings, SCALED_TOPICS)
    log_dir = settings.home / "logs"
    # what an earlier run left unread (its MLLP phase, a run stopped halfway) is read before the
    # first preloaded phase, not inside its span
    backlog_before_run = {
        "pipeline": drain_backlog(
            settings, BENCH_APP_ID, topics.EVENTS_RAW, lambda: spawn_pipeline(settings, log_dir / "bench-drain.log")
        ),
        "baseline": drain_backlog(
            settings,
            BASELINE_GROUP,
            BASELINE_IN,
            lambda: spawn_baseline(settings, log_dir / "bench-drain-baseline.log"),
        ),
    }
    data_dir = ensure_dataset(settings.data_dir, settings.home)
    stays = pick_stays(data_dir, patients, septic_share=0.3, seed=11)
    events = bench_events(stays, n_events)
    patients_seen = {k.decode() for _, k, _ in events}
    baseline = measure_baseline(settings, len(events), [(k, v) for _, k, v in events], log_dir)
    with_treatment = None
    if not quick:
        with_treatment, proc = measure_pipeline(
            settings, len(events), bench_events(stays, n_events), log_dir, agents=ALL_AGENTS
        )
        stop_worker(proc)
    pipeline, proc = measure_pipeline(settings, len(events), events, log_dir)
    try:
        lat_events = bench_events(stays, int(rate * latency_s))
        patients_seen.update(k.decode() for _, k, _ in lat_events)
        latency = measure_latency(settings, lat_events, rate)
        pipeline["worker_peak_rss_mb"] = max(pipeline["worker_peak_rss_mb"], rss_mb(proc.pid))
    finally:
        stop_worker(proc)
    redis_size = redis_bytes_per_patient(settings, patients_seen)
    curve = no_curve("skipped (--quick)") if quick else batch_curve_or_why_not(stays)
    plot_error = None
    if plot_path and curve["us_per_sample"]:
        try:
            plot_curve(curve["us_per_sample"], curve["end_to_end_us_per_sample"], plot_path, per_model_lines(curve))
        except OSError as exc:  # the figures are kept: the command reports the plot's failure at its end
            plot_error = f"{plot_path}: {exc.strerror or exc}"
    scale = (
        workers_curve(settings, workers, lambda: bench_events(stays, n_events), log_dir, partitions) if workers else []
    )
    latency_scaled = None
    if workers and max(workers) > 1:  # the same offered rate against the curve's largest worker count

        def offered() -> dict[str, Any]:
            return measure_latency(settings, bench_events(stays, int(rate * latency_s)), rate)

        latency_scaled = latency_with_workers(settings, max(workers), offered, log_dir)
    # last: its events land on vigil.events.raw with no worker running, a backlog for whichever
    # worker of the group comes next (it halved the curve's 1-worker point when it ran before it)
    mllp = None if quick else measure_mllp(settings)
    warnings = data_shortfall(patients, len(stays), n_events, len(events), int(rate * latency_s), len(lat_events), rate)
    warnings += unsettled_phases(
        {
            "baseline": baseline,
            "pipeline": pipeline,
            "pipeline with the treatment agent": with_treatment,
            "latency": latency,
            **{f"{p['workers']} worker(s), {kind}": p.get(kind) for p in scale for kind in ("pipeline", "baseline")},
            "latency with the curve's most workers": latency_scaled,
        }
    )
    ratio = (
        pipeline["events_per_s"] / baseline["events_per_s"]
        if pipeline["events_per_s"] and baseline["events_per_s"]
        else None
    )
    return {
        "baseline_events_per_s": round(baseline["events_per_s"] or 0, 1),
        "pipeline_events_per_s": round(pipeline["events_per_s"] or 0, 1),
        "ratio": round(ratio, 3) if ratio else None,
        "p50_ms": latency["p50_ms"],
        "p99_ms": latency["p99_ms"],
        "batch_speedup": round(curve["batch_speedup"], 2) if curve["batch_speedup"] else None,
        "score_us_per_patient": round(curve["score_us_per_patient"], 1) if curve.get("score_us_per_patient") else None,
        "redis_bytes_per_patient": redis_size["bytes_per_patient"],
        "redis_per_patient": redis_size,
        "mllp": mllp,
        "workers_curve": [
            {k: point[k] for k in ("workers", "pipeline_events_per_s", "baseline_events_per_s")} for point in scale
        ],
        "warnings": warnings,
        "plot_error": plot_error,
        "backlog_before_run": backlog_before_run,
        "events": len(events),
        "patients": len({k for _, k, _ in events}),
        "partitions": settings.kafka.partitions,
        "latency": latency,
        "latency_with_workers": latency_scaled,
        "baseline": baseline,
        "pipeline": pipeline,
        "pipeline_agents": list(PIPELINE_AGENTS),
        "with_treatment_agent": with_treatment,
        "workers_detail": scale,
        "end_to_end_batch_speedup": (
            round(curve["end_to_end_batch_speedup"], 2) if curve["end_to_end_batch_speedup"] else None
        ),
        "batch_curve_us_per_sample": {str(k): round(v, 1) for k, v in curve["us_per_sample"].items()},
        "end_to_end_curve_us_per_sample": {str(k): round(v, 1) for k, v in curve["end_to_end_us_per_sample"].items()},
        "step_curve_us_per_sample": {str(k): round(v, 2) for k, v in curve.get("step_us_per_sample", {}).items()},
        "tree_curve_us_per_sample": {str(k): round(v, 2) for k, v in curve.get("tree_us_per_sample", {}).items()},
        "contrib_curve_us_per_sample": {str(k): round(v, 2) for k, v in curve.get("contrib_us_per_sample", {}).items()},
        "providers": curve.get("providers"),
        "intra_op_threads": settings.batch.intra_op_threads,
        "cpu_count": os.cpu_count(),
    }
