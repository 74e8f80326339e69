"""Where the scoring call's time goes: ``models.stream_step.advance`` at batch 1 and 64 on the
bench's steady requests (300 stays, as ``vigil bench``'s batch curve), timed, then under cProfile.

    python -m vigil.bench.profile_advance        # µs per patient, then the top functions per batch
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time

from vigil.bench.batch_curve import steady_requests
from vigil.infra.allocator import keep_freed_memory
from vigil.infra.dataset import ensure_dataset
from vigil.infra.replay import pick_stays
from vigil.infra.settings import get_settings


def main(batches: tuple[int, ...] = (1, 64), top: int = 25) -> None:
    from vigil.models.stream_step import advance

    keep_freed_memory()
    settings = get_settings()
    stays = pick_stays(ensure_dataset(settings.data_dir, settings.home), 300, septic_share=0.3, seed=11)
    bundle, runner, requests = steady_requests(stays, max(batches))
    for b in batches:
        batch = requests[:b]
        advance(bundle, runner, batch, explain=True)  # warm-up
        n = max(1, 2000 // b)
        t0 = time.perf_counter()
        for _ in range(n):
            advance(bundle, runner, batch, explain=True)
        print(f"batch {b}: {(time.perf_counter() - t0) / (n * b) * 1e6:.0f} µs per patient (no profiler)")
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(n):
            advance(bundle, runner, batch, explain=True)
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(top)
        print(out.getvalue())


if __name__ == "__main__":
    main()
