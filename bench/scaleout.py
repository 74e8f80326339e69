"""`vigil bench --workers N`: events/s of 1..N pipeline workers next to as many bare-Faust workers,
on input topics with enough partitions, and what the broker and Redis did meanwhile.

Each point of the curve: the N worker processes start on the input topic and join one consumer
group; when every worker owns some of its partitions (no rebalance left to stall the run) and the
group has read everything on the topic (no backlog of an earlier phase inside the point's span),
the events are produced and events/s = events ÷ (last − first output timestamp), the single-worker
comparison's formula (``bench.run``: the events accounted for, where the point timed out); the point
ends when every event is scored or dead-lettered, and a worker that ends stops it.
No count above the topics' partitions is run: such a worker owns nothing, and the point would
wait for a split that never comes. The baseline (``bench.baseline``) gets the same
treatment with its own group and topics. Partitions: Kafka cannot shrink a topic, so the bench grows
the topics it consumes to ``partitions`` (12 by default: up to 12 workers get a share each) and never
shrinks them; run it on a bench stack, not on a production cluster.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vigil.bench.harness import (
    BASELINE_GROUP,
    BASELINE_IN,
    BASELINE_OUT,
    BENCH_APP_ID,
    DeadLetterWatch,
    OutputWatch,
    events_per_s,
    preload,
    require_all_running,
    settle,
    spawn_baseline,
    spawn_pipeline,
    unless_ended,
    wait_for_no_backlog,
    wait_until,
)
from vigil.bench.usage import sample, usage_between
from vigil.infra.connect import kafka_admin
from vigil.infra.settings import Settings
from vigil.infra.stack.topics import ensure_topics
from vigil.infra.workers import stop_worker
from vigil.schemas import topics

BENCH_PARTITIONS = 12
# the topics whose consumers scale out (the pipeline's agents and the baseline's)
SCALED_TOPICS = (
    topics.EVENTS_RAW,
    topics.SCORES,
    topics.ALERT_ACKS,
    BASELINE_IN,
    BASELINE_OUT,
)


def with_partitions(settings: Settings, partitions: int) -> Settings:
    """``settings`` whose topics (and every worker it spawns, through ``worker_env``) declare at
    least ``partitions`` partitions."""
    wanted = max(settings.kafka.partitions, partitions)
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"partitions": wanted})})


def grow_partitions(settings: Settings, names: tuple[str, ...]) -> dict[str, int]:
    """Create ``names`` if missing and grow any with fewer than ``settings.kafka.partitions``
    partitions; returns each topic's partition count."""
    from kafka.admin import NewPartitions

    ensure_topics(settings, names)
    admin = kafka_admin(settings, client_id="vigil-bench")
    try:
        current = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(list(names))}
        wanted = settings.kafka.partitions
        grow = {t: NewPartitions(wanted) for t, n in current.items() if n < wanted}
        if grow:
            admin.create_partitions(grow)
        return {t: max(n, wanted) for t, n in current.items()}
    finally:
        admin.close()


# kafka-python decodes each member's subscription as the plain consumer protocol's; Faust's carries
# its own user data, so every describe logged a warning quoting the member's bytes (the assignment,
# read below, decodes)
logging.getLogger("kafka.admin._groups").setLevel(logging.ERROR)


def owners(settings: Settings, group: str, topic: str) -> list[list[int]]:
    """The partitions of ``topic`` each member of ``group`` owns."""
    admin = kafka_admin(settings, client_id="vigil-bench")
    try:
        members = admin.describe_groups([group])[group]["members"]
    finally:
        admin.close()
    return [
        sorted(
            p for tp in m["member_assignment"]["assigned_partitions"] if tp["topic"] == topic for p in tp["partitions"]
        )
        for m in members
    ]


def split_among(settings: Settings, group: str, topic: str, workers: int, partitions: int) -> bool:
    """Every one of ``workers`` members owns a share and all partitions are owned."""
    try:
        owned = owners(settings, group, topic)
    except Exception:  # the group is being formed
        return False
    every = sorted(p for o in owned for p in o)
    return len(owned) == workers and all(owned) and every == list(range(partitions))


def measure_point(
    settings: Settings,
    workers: int,
    kind: str,
    events: list[tuple[str, bytes, bytes]],
    log_dir: Path,
    partitions: int,
) -> dict[str, Any]:
    """One point: ``kind`` "pipeline" (ingest + alert agents) or "baseline" with ``workers`` processes."""
    ids = {eid for eid, _, _ in events}
    seen: set[str] = set()
    dead: DeadLetterWatch | None = None
    spawn: Callable[[Settings, Path], subprocess.Popen[bytes]]
    if kind == "pipeline":
        group, in_topic, out_topic = BENCH_APP_ID, topics.EVENTS_RAW, topics.SCORES
        letters = dead = DeadLetterWatch(settings)

        def absorb(record: Any) -> None:
            seen.update(json.loads(record.value)["event_ids"])

        def handled() -> int:  # a dead-lettered event is never scored: waiting for it ran out the 600 s
            return len(ids) - settle(ids, seen, letters.by_event())[1]

        spawn, log_name = spawn_pipeline, "bench-scale-{}.log"

    else:
        group, in_topic, out_topic = BASELINE_GROUP, BASELINE_IN, BASELINE_OUT
        count = [0]

        def absorb(record: Any) -> None:
            count[0] += 1

        def handled() -> int:
            return min(count[0], len(events))

        spawn, log_name = spawn_baseline, "bench-scale-baseline-{}.log"

    running: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        for i in range(workers):  # each kept as it starts: a stop while the next one starts stops it too
            log = log_dir / log_name.format(i)
            running.append((spawn(settings, log), log))
        split = unless_ended(lambda: split_among(settings, group, in_topic, workers, partitions), running)
        ready = wait_until(split, timeout=180)
        backlog = wait_for_no_backlog(settings, group, in_topic)
        watch = OutputWatch(settings, out_topic, on_record=absorb).start()
        if dead:
            dead.start()
        before = sample(settings, [p.pid for p, _ in running])
        preload(
            settings,
            in_topic,
            [(k, v) for _, k, v in events],
            on_ack=(lambda metadata, index: dead.acknowledged(metadata, events[index][0])) if dead else None,
        )
        complete = wait_until(unless_ended(lambda: handled() >= len(ids), running), timeout=600)
        after = sample(settings, [p.pid for p, _ in running])
        watch.stop()
        if dead:
            dead.stop()
    finally:
        for p, _ in running:
            stop_worker(p)
    span = ((watch.last_ts or 0) - (watch.first_ts or 0)) / 1000.0
    dead_lettered, unaccounted = settle(ids, seen, dead.by_event()) if dead else ({}, None)
    rate = events_per_s(handled(), span)
    return {
        "workers": workers,
        "kind": kind,
        "group_split_before_load": ready,
        "backlog_before_load": backlog,
        "complete": complete,
        "seconds": span,
        "events_per_s": round(rate, 1) if rate is not None else None,
        "dead_lettered": dead_lettered,
        "unaccounted": unaccounted,
        "usage": usage_between(before, after, len(events)),
    }


def workers_curve(
    settings: Settings,
    counts: list[int],
    make_events: Callable[[], list[tuple[str, bytes, bytes]]],
    log_dir: Path,
    partitions: int = BENCH_PARTITIONS,
) -> list[dict[str, Any]]:
    """{workers, pipeline_events_per_s, baseline_events_per_s, ...} per worker count; ``make_events``
    draws fresh patients for every run (no earlier state in Redis)."""
    settings = with_partitions(settings, partitions)
    actual = grow_partitions(settings, SCALED_TOPICS)  # a topic may already have more: split over those
    curve = []
    for n in counts:
        baseline = measure_point(settings, n, "baseline", make_events(), log_dir, actual[BASELINE_IN])
        pipeline = measure_point(settings, n, "pipeline", make_events(), log_dir, actual[topics.EVENTS_RAW])
        curve.append(
            {
                "workers": n,
                "pipeline_events_per_s": pipeline["events_per_s"],
                "baseline_events_per_s": baseline["events_per_s"],
                "partitions": settings.kafka.partitions,
                "pipeline": pipeline,
                "baseline": baseline,
            }
        )
    return curve


def latency_with_workers(
    settings: Settings, workers: int, measure: Callable[[], dict[str, Any]], log_dir: Path
) -> dict[str, Any]:
    """``measure`` (the bench's latency phase: a fixed offered rate) run against ``workers`` pipeline
    workers in one group, started and split over the partitions before the first event."""
    partitions = grow_partitions(settings, (topics.EVENTS_RAW,))[topics.EVENTS_RAW]
    running: list[tuple[subprocess.Popen[bytes], Path]] = []
    split = unless_ended(lambda: split_among(settings, BENCH_APP_ID, topics.EVENTS_RAW, workers, partitions), running)
    try:
        for i in range(workers):  # each kept as it starts: a stop while the next one starts stops it too
            log = log_dir / f"bench-latency-{i}.log"
            running.append((spawn_pipeline(settings, log), log))
        ready = wait_until(split, timeout=180)
        backlog = wait_for_no_backlog(settings, BENCH_APP_ID, topics.EVENTS_RAW)
        result = measure()
        require_all_running(running)  # the figures of fewer workers than it says
    finally:
        for p, _ in running:
            stop_worker(p)
    return {"workers": workers, "group_split_before_load": ready, "backlog_before_load": backlog, **result}


def parse_counts(spec: str) -> list[int]:
    """``"3"``: 1, 2 and 3 workers; ``"1,2,4"``: those counts; ``"2,"``: two workers only."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--workers takes a count or a list of counts (e.g. 3 or 1,2,4), not {spec!r}")
    counts = [int(p) for p in parts]
    return sorted(set(counts)) if "," in spec else list(range(1, counts[0] + 1))


def counts_within(counts: list[int], partitions: int) -> None:
    """Every worker count gets a share of the ``partitions``: a worker beyond them owns nothing, and
    its point waited 180 s for a split that never comes, then measured idle workers."""
    if counts and max(counts) > partitions:
        raise ValueError(
            f"--workers {max(counts)} is more than the {partitions} partitions the bench's topics get: "
            f"pass --partitions {max(counts)} or more, or fewer workers"
        )
