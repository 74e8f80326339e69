"""Faults for tests/reliability/test_stalled_worker.py, loaded by the workers it starts (this folder
first on their PYTHONPATH). Nothing in Vigil carries a hook for them; without their variables this
module does nothing.

- ``VIGIL_TEST_STALL_FLAG``: once that file exists, aiokafka's fetcher leaves the first partition of
  ``vigil.events.raw`` it holds out of every fetch, as in faust-streaming/faust#629: the partition
  stays assigned and nothing reads it. The partition chosen is written to ``VIGIL_TEST_STALL_CHOSEN``
  (``topic partition``).
- ``VIGIL_TEST_BLOCK_LOOP_FLAG``: once that file exists, the main thread's event loop enters a call
  that never returns (the file is removed as it does); Faust's consumer thread, with Kafka's
  heartbeats, runs on.
"""

from __future__ import annotations

import os
from typing import Any

_FLAG = os.environ.get("VIGIL_TEST_STALL_FLAG")
_BLOCK_FLAG = os.environ.get("VIGIL_TEST_BLOCK_LOOP_FLAG")

if _FLAG:
    from aiokafka.consumer import fetcher as _fetcher

    _original = _fetcher.Fetcher._get_actions_per_node
    _stalled: list[Any] = []

    class _Without:
        """The assignment as the fetcher sees it, less one partition."""

        def __init__(self, assignment: Any, tp: Any) -> None:
            self._assignment, self._tp = assignment, tp

        @property
        def tps(self) -> Any:
            return {tp for tp in self._assignment.tps if tp != self._tp}

        def __getattr__(self, name: str) -> Any:
            return getattr(self._assignment, name)

    def _get_actions_per_node(self: Any, assignment: Any) -> Any:
        if not _stalled and os.path.exists(_FLAG):
            raw = sorted(tp for tp in assignment.tps if tp.topic == "vigil.events.raw")
            if raw:
                _stalled.append(raw[0])
                with open(os.environ["VIGIL_TEST_STALL_CHOSEN"], "w") as out:
                    out.write(f"{raw[0].topic} {raw[0].partition}")
        if _stalled and _stalled[0] in assignment.tps:
            assignment = _Without(assignment, _stalled[0])
        return _original(self, assignment)

    _fetcher.Fetcher._get_actions_per_node = _get_actions_per_node

if _BLOCK_FLAG:
    import asyncio.base_events as _base_events
    import threading
    import time

    _run_once = _base_events.BaseEventLoop._run_once
    _looked = [0.0]

    def _run_once_until_blocked(self: Any) -> Any:
        if threading.current_thread() is threading.main_thread() and time.monotonic() - _looked[0] > 0.2:
            _looked[0] = time.monotonic()
            if os.path.exists(_BLOCK_FLAG):
                os.unlink(_BLOCK_FLAG)
                while True:  # a call that never returns
                    time.sleep(3600)
        return _run_once(self)

    _base_events.BaseEventLoop._run_once = _run_once_until_blocked
