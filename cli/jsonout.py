"""The ``--json`` contract: every command that emits a result prints one JSON object as its last line."""

from __future__ import annotations

import json
import sys
from typing import Any


def emit_json(summary: dict[str, Any]) -> None:
    sys.stdout.flush()
    sys.stdout.write(json.dumps(summary, default=str, sort_keys=False) + "\n")
    sys.stdout.flush()
