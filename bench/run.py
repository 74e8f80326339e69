"""`vigil bench`: the full pipeline against bare Faust on the same broker, in one run.

Throughput is measured the same way for both: N events are preloaded into the input topic, the
worker is started, and events/s = N / (last output timestamp - first output timestamp), from the
Kafka timestamps of the output messages. Latency is measured at a fixed offered rate with the
pipeline running: per event, (timestamp of the first score that includes it) - (its produce
timestamp). Batch speedup times the deployed ONNX models in-process at batch 1 and 64.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from vigil.infra.connect import consumer_from_now, kafka_producer, redis_client
from vigil.infra.dataset import ensure_dataset
from vigil.infra.replay import Stay, pick_stays, stay_events
from vigil.infra.settings import Settings, get_settings
from vigil.infra.stack import stack_up
from vigil.infra.stack.topics import ensure_topics
from vigil.infra.workers import spawn_worker, stop_worker, worker_env
from vigil.schemas import topics

BATCH_CURVE_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass
class OutputWatch:
    """Consumes an output topic from its current end; records per-message timestamps."""

    settings: Settings
    topic: str
    on_record: Callable[[Any], None] | None = None
    count: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> OutputWatch:
        self.consumer = consumer_from_now(self.settings, (self.topic,), fetch_max_wait_ms=20)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            for records in self.consumer.poll(timeout_ms=100, max_records=5000).values():
                for r in records:
                    self.count += 1
                    self.first_ts = r.timestamp if self.first_ts is None else min(self.first_ts, r.timestamp)
                    self.last_ts = r.timestamp if self.last_ts is None else max(self.last_ts, r.timestamp)
                    if self.on_record:
                        self.on_record(r)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.consumer.close()


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


def preload(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = kafka_producer(settings, linger_ms=20, batch_size=256 * 1024)
    for key, value in messages:
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def measure_baseline(settings: Settings, n: int, messages: list[tuple[bytes, bytes]], log_dir: Path) -> dict[str, Any]:
    import subprocess
    import sys

    from vigil.bench.baseline import BASELINE_IN, BASELINE_OUT

    ensure_topics(settings, (BASELINE_IN, BASELINE_OUT))
    watch = OutputWatch(settings, BASELINE_OUT).start()
    preload(settings, BASELINE_IN, messages)
    out = open(log_dir / "bench-baseline.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "vigil.bench.baseline"],
        env=worker_env(settings),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        ok = _wait(lambda: watch.count >= n, timeout=300)
    finally:
        stop_worker(proc)
        watch.stop()
    span = ((watch.last_ts or 0) - (watch.first_ts or 0)) / 1000.0
    return {"events": watch.count, "complete": ok, "seconds": span, "events_per_s": n / span if span > 0 else None}


# The pipeline the goals are stated for: ingest -> state -> features -> models -> scores -> alerts.
# Treatment scoring is a further consumer of vigil.scores; it is measured separately.
PIPELINE_AGENTS = ("ingest", "alert")
ALL_AGENTS = ("ingest", "alert", "treat", "interop")


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
    preload(settings, topics.EVENTS_RAW, [(k, v) for _, k, v in events])
    proc = spawn_worker(settings, log_dir / "bench-pipeline.log", agents=agents)
    peak_rss = 0.0

    def done() -> bool:
        nonlocal peak_rss
        peak_rss = max(peak_rss, _rss_mb(proc.pid))
        return ids <= seen

    ok = _wait(done, timeout=600)
    watch.stop()
    span = ((watch.last_ts or 0) - (watch.first_ts or 0)) / 1000.0
    result = {
        "events": len(ids & seen),
        "complete": ok,
        "seconds": span,
        "scores": watch.count,
        "events_per_s": n / span if span > 0 else None,
        "worker_peak_rss_mb": round(peak_rss, 1),
    }
    return result, proc


def measure_latency(settings: Settings, events: list[tuple[str, bytes, bytes]], rate: float) -> dict[str, Any]:
    produced: dict[str, int] = {}
    scored: dict[str, int] = {}

    def absorb(record: Any) -> None:
        for eid in json.loads(record.value)["event_ids"]:
            scored.setdefault(eid, record.timestamp)

    watch = OutputWatch(settings, topics.SCORES, on_record=absorb).start()
    producer = kafka_producer(settings, linger_ms=1)
    t0 = time.perf_counter()
    for i, (eid, key, value) in enumerate(events):
        target = t0 + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        ts = int(time.time() * 1000)
        produced[eid] = ts
        producer.send(topics.EVENTS_RAW, key=key, value=value, timestamp_ms=ts)
    producer.flush()
    offered_s = time.perf_counter() - t0
    _wait(lambda: set(produced) <= set(scored), timeout=120)
    watch.stop()
    producer.close()
    lat = np.array([scored[e] - produced[e] for e in produced if e in scored], dtype=float)
    return {
        "offered_rate": rate,
        "achieved_offer_rate": round(len(events) / offered_s, 1),
        "events": len(events),
        "scored": int(len(lat)),
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
        "max_ms": float(lat.max()) if len(lat) else None,
    }


def redis_bytes_per_patient(settings: Settings, patients: set[str]) -> dict[str, Any]:
    """Redis MEMORY USAGE of everything Vigil keeps per patient (window, stepping carry with the
    recurrent states, alert and care state)."""
    from vigil.infra.redis import alert_key, care_key, carry_key, window_key

    client = redis_client(settings)
    total = 0
    for pid in patients:
        for key in (window_key(pid), carry_key(pid), alert_key(pid), care_key(pid)):
            total += client.memory_usage(key) or 0
    client.close()
    return {"patients": len(patients), "bytes_per_patient": round(total / max(1, len(patients)), 1)}


def steady_requests(stays: list[Stay], n: int) -> tuple[Any, Any, list[Any]]:
    """(bundle, runner, one request per patient): each stay stepped hour by hour to its second-last
    hour, then asked for its last hour (that hour's provisional score and the previous hour's
    final): what the stream computes for a patient on every new hour."""
    from vigil.models.step_session import StepSession
    from vigil.models.stepping import StayCarry
    from vigil.models.stream_step import StepRequest, advance, load_served_bundle

    bundle = load_served_bundle(intra_op_threads=get_settings().batch.intra_op_threads)
    runner = StepSession(bundle.step_session, bundle.hidden)
    requests = []
    for stay in (s for s in stays if len(s.matrix) >= 2):
        m, static, carry = stay.matrix, stay.static, StayCarry()
        for hour in range(len(m) - 1):
            (out,) = advance(bundle, runner, [StepRequest(carry, m[carry.boundary : hour + 1], hour, static, None)])
            carry = out.carry
        requests.append(StepRequest(carry, m[carry.boundary :], len(m) - 1, static, None))
    while len(requests) < n:
        requests += requests
    return bundle, runner, requests[:n]


def batch_curve(stays: list[Stay], reps_target_s: float = 0.4) -> dict[str, Any]:
    """Per-patient cost at each batch size (in-process, CPU) of the stepping bundle the worker serves:
    the deployed ONNX models alone (``models``: the tree model on one hour's features and one step of
    the recurrent graph, on prepared inputs) and the whole scoring call as the stream makes it
    (``end_to_end``: ``models.stream_step.advance``: scan + features + steps + trees + explanations)."""
    from vigil.models.stepping import plan_advance
    from vigil.models.stream_step import advance

    bundle, runner, requests = steady_requests(stays, max(BATCH_CURVE_SIZES))
    explain = get_settings().batch.explain != "none"  # what the stream computes per score
    plans = [plan_advance(r.carry, r.rows, r.last_hour, r.static, r.changed_from) for r in requests]
    feats = np.stack([p.features for p in plans]).astype(np.float32)
    x = np.stack([p.closed_chain[1][-1] for p in plans]).astype(np.float32)
    h = np.stack([np.zeros(bundle.hidden) if p.closed_chain[0] is None else p.closed_chain[0] for p in plans])
    h = h.astype(np.float32)

    def per_patient_us(fn: Callable[[], object], b: int) -> float:
        fn()  # warm-up
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < reps_target_s or reps < 3:
            fn()
            reps += 1
        return (time.perf_counter() - t0) / (reps * b) * 1e6

    models_curve: dict[int, float] = {}
    step_curve: dict[int, float] = {}
    tree_curve: dict[int, float] = {}
    end_to_end: dict[int, float] = {}
    for b in BATCH_CURVE_SIZES:

        def models_only(b: int = b) -> object:
            return bundle.tree_probability(feats[:b]), bundle.step(x[:b], h[:b])

        def step_only(b: int = b) -> object:
            return bundle.step(x[:b], h[:b])

        def tree_only(b: int = b) -> object:
            return bundle.tree_probability(feats[:b])

        step_curve[b] = per_patient_us(step_only, b)
        tree_curve[b] = per_patient_us(tree_only, b)

        def whole(b: int = b) -> object:
            return advance(bundle, runner, requests[:b], explain=explain)

        models_curve[b] = per_patient_us(models_only, b)
        end_to_end[b] = per_patient_us(whole, b)
    return {
        "us_per_sample": models_curve,
        "step_us_per_sample": step_curve,
        "tree_us_per_sample": tree_curve,
        "end_to_end_us_per_sample": end_to_end,
        "batch_speedup": models_curve[1] / models_curve[64],
        "end_to_end_batch_speedup": end_to_end[1] / end_to_end[64],
        "score_us_per_patient": end_to_end[64],
        "providers": runner.providers,
        "bundle": bundle.version,
    }


def plot_curve(curve: dict[int, float], end_to_end: dict[int, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(curve)
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    ax.plot(sizes, [curve[s] for s in sizes], marker="o", label="ONNX models (both sessions)")
    ax.plot(sizes, [end_to_end[s] for s in sizes], marker="s", label="features + models + explanations")
    ax.legend(fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size (patients)")
    ax.set_ylabel("µs per patient")
    ax.set_title(f"ONNX Runtime CPU, {os.cpu_count()} cores: per-patient inference cost")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _no_curve(why: str) -> dict[str, Any]:
    return {
        "us_per_sample": {},
        "end_to_end_us_per_sample": {},
        "batch_speedup": None,
        "end_to_end_batch_speedup": None,
        "error": why[:200],
    }


def _batch_curve_or_why_not(stays: list[Stay]) -> dict[str, Any]:
    try:
        return batch_curve(stays)
    except Exception as exc:  # no model artifacts: say so rather than invent a number
        return _no_curve(f"{type(exc).__name__}: {exc}")


def run_bench(
    settings: Settings,
    n_events: int,
    rate: float,
    latency_s: float,
    patients: int,
    plot_path: Path | None,
    quick: bool = False,
) -> dict[str, Any]:
    """``quick``: only the pipeline against the baseline, the latency run and the Redis size (no
    run with the treatment agent, no batch curve): every client of the bench, in a minute."""
    stack_up(settings)
    log_dir = settings.home / "logs"
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
        pipeline["worker_peak_rss_mb"] = max(pipeline["worker_peak_rss_mb"], _rss_mb(proc.pid))
    finally:
        stop_worker(proc)
    redis_size = redis_bytes_per_patient(settings, patients_seen)
    curve = _no_curve("skipped (--quick)") if quick else _batch_curve_or_why_not(stays)
    if plot_path and curve["us_per_sample"]:
        plot_curve(curve["us_per_sample"], curve["end_to_end_us_per_sample"], plot_path)
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
        "events": len(events),
        "patients": len({k for _, k, _ in events}),
        "latency": latency,
        "baseline": baseline,
        "pipeline": pipeline,
        "pipeline_agents": list(PIPELINE_AGENTS),
        "with_treatment_agent": with_treatment,
        "end_to_end_batch_speedup": (
            round(curve["end_to_end_batch_speedup"], 2) if curve["end_to_end_batch_speedup"] else None
        ),
        "batch_curve_us_per_sample": {str(k): round(v, 1) for k, v in curve["us_per_sample"].items()},
        "end_to_end_curve_us_per_sample": {str(k): round(v, 1) for k, v in curve["end_to_end_us_per_sample"].items()},
        "providers": curve.get("providers"),
        "cpu_count": os.cpu_count(),
    }
