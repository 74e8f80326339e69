"""What building and serialising one score costs, apart from sending it: the scoring step's
``build_risk_score`` + ``model_dump_json`` on real stays' windows and the served bundle's model
scores, in one process, no Kafka (docs/performance.md, "Why p99 at 1,000 events/s misses"):

    python -m vigil.bench.build_cost [STAYS]      # a line, then a JSON line
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta

from vigil.infra.dataset import ensure_dataset
from vigil.infra.replay import pick_stays, stay_events
from vigil.infra.settings import get_settings
from vigil.models.scoring import PendingUpdate, build_risk_score
from vigil.models.step_session import StepSession
from vigil.models.stream_step import StepOutcome, advance, load_served_bundle, served_bundle_dir, step_request
from vigil.models.window import PatientWindow

HOURS = 12  # each stay's first hours: a window with a closed hour to score


def main(n_stays: int = 40, rounds: int = 20) -> dict[str, float]:
    settings = get_settings()
    stays = pick_stays(ensure_dataset(settings.data_dir, settings.home), n_stays, septic_share=0.3, seed=11)
    bundle = load_served_bundle(served_bundle_dir(settings.bundle_dir), intra_op_threads=1)
    runner = StepSession(bundle.step_session, bundle.hidden)
    base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS + 1)
    work: list[tuple[PatientWindow, PendingUpdate, StepOutcome]] = []
    for stay in stays:
        window, update = PatientWindow(), PendingUpdate(stay.patient_id)
        for hour, event in stay_events(stay, base):
            if hour < HOURS:
                window.apply(event)
                update.add(event.event_id, event.observed_at, None, event.encounter, event.ward)
        request = step_request(window, None, None)
        if request is not None:
            work.append((window, update, advance(bundle, runner, [request], explain=True)[0]))
    now = datetime.now(UTC)
    sizes: list[int] = []
    t0 = time.perf_counter()
    for _ in range(rounds):
        for window, update, outcome in work:
            for closed in outcome.closed[-1:]:
                final = build_risk_score(window, update, closed.models, now, closed.hour, "final")
                sizes.append(len(final.model_dump_json()))
            sizes.append(len(build_risk_score(window, update, outcome.current.models, now).model_dump_json()))
    seconds = time.perf_counter() - t0
    result = {
        "scores": len(sizes),
        "us_per_score": round(seconds / len(sizes) * 1e6, 1),
        "mean_json_bytes": round(sum(sizes) / len(sizes)),
    }
    print(f"{result['scores']} scores: {result['us_per_score']} µs each to build and serialise", flush=True)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
