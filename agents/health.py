"""Agent health for the worker's readiness (issue 16): a worker whose agent is crash-looping, or
whose batch cannot be finished (a dead letter the broker keeps refusing, a broker away for long),
must say so on ``/readyz`` and in the health file instead of reporting ``ready: true``.

``infra.health`` cannot import the agents (layers point down), so the worker passes
``AGENTS.ok`` down as a callable, like the Redis store's health.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

# Faust restarts a crashed agent at once; this many crashes within the window is a crash loop
# (each crash acks the batch in hand, so it is never normal operation).
CRASH_LIMIT = 3
CRASH_WINDOW_S = 300.0
# A batch still retrying after this long (broker or Redis away) makes the worker not ready.
STALL_AFTER_S = 30.0


class AgentHealth:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._retrying: dict[str, float] = {}  # agent -> since when its current batch retries
        self._blocked: set[str] = set()  # agents whose batch cannot be finished (non-retriable)
        self._crashes: dict[str, deque[float]] = {}

    def retrying(self, agent: str) -> None:
        self._retrying.setdefault(agent, self._clock())

    def blocked(self, agent: str) -> None:
        self._blocked.add(agent)

    def finished(self, agent: str) -> None:
        """The agent's batch is done: it is neither retrying nor blocked any more."""
        self._retrying.pop(agent, None)
        self._blocked.discard(agent)

    def holding(self) -> bool:
        """Some agent is retrying its batch or cannot finish it now (a broker or Redis away, a
        dead letter refused): every partition of the worker waits for it."""
        return bool(self._retrying or self._blocked)

    def crashed(self, agent: str) -> None:
        self._crashes.setdefault(agent, deque(maxlen=CRASH_LIMIT)).append(self._clock())

    def problems(self) -> dict[str, str]:
        """agent -> why it is not healthy (``blocked``, ``stalled``, ``crash_loop``)."""
        # read by the readiness and metrics threads while the event loop changes them: snapshots
        # (list() and tuple() of a dict or set are atomic under the GIL; iterating one is not)
        now = self._clock()
        out: dict[str, str] = {}
        for agent, crashes in list(self._crashes.items()):
            times = tuple(crashes)
            if len(times) >= CRASH_LIMIT and now - times[0] <= CRASH_WINDOW_S:
                out[agent] = "crash_loop"
        for agent, since in list(self._retrying.items()):
            if now - since >= STALL_AFTER_S:
                out[agent] = "stalled"
        for agent in tuple(self._blocked):
            out[agent] = "blocked"
        return out

    def ok(self) -> bool:
        return not self.problems()


AGENTS = AgentHealth()
