"""The ``--json`` contract: every command that emits a result prints one JSON object as its last line.

Strict JSON (RFC 8259): a figure that is not a number (NaN, an infinity: nothing compared, a
division by nothing) is written as ``null``, never as the bare ``NaN`` Python's ``json`` writes by
default, which ``jq``, JavaScript's ``JSON.parse`` and most parsers refuse.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any


def strict_json_value(value: Any) -> Any:
    """``value`` with every float that is not finite replaced by None, recursively through dicts,
    lists and tuples; numpy scalars and arrays as Python numbers and lists (read by their module's
    name: importing numpy here would slow every command's start)."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_key(k): strict_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [strict_json_value(v) for v in value]
    return value


def _key(key: Any) -> Any:
    """A key ``json`` can write as it is (a string, a finite number, a bool, None), else its text."""
    if isinstance(key, str | int | bool) or key is None:
        return key
    if isinstance(key, float) and math.isfinite(key):
        return key
    return str(key)


def emit_json(summary: dict[str, Any]) -> None:
    sys.stdout.flush()
    # default=str: what json cannot write itself (a path, a datetime) as its text
    line = json.dumps(strict_json_value(summary), default=str, sort_keys=False, allow_nan=False)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
