"""A fault for tests/reliability/test_partition_stall.py, loaded by the worker it starts (this folder
first on its PYTHONPATH): once the file named by ``VIGIL_TEST_STALL_FLAG`` exists, aiokafka's fetcher
leaves the first partition of ``vigil.events.raw`` it holds out of every fetch, as it does in
faust-streaming/faust#629: the partition stays assigned and nothing reads it. The partition chosen
is written to ``VIGIL_TEST_STALL_CHOSEN`` (``topic partition``). Nothing in Vigil carries a hook
for this; without the variable this module does nothing."""

from __future__ import annotations

import os
from typing import Any

_FLAG = os.environ.get("VIGIL_TEST_STALL_FLAG")

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
