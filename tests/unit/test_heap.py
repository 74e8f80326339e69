"""The worker's start-up heap leaves the cyclic collector's walk (infra/heap.py)."""

from __future__ import annotations

import subprocess
import sys


def test_freeze_startup_heap_once_per_process() -> None:
    # in a child: a frozen heap would outlive this test in the test session's own process
    code = (
        "import gc\n"
        "from vigil.infra.heap import freeze_startup_heap\n"
        "keep = [[i] for i in range(5000)]\n"
        "first = freeze_startup_heap()\n"
        "assert first >= 5000 and gc.get_freeze_count() == first, first\n"
        "more = [[i] for i in range(100)]\n"
        "assert freeze_startup_heap() == first  # the second call freezes nothing new\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
