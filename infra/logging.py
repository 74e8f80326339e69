"""structlog set-up: JSON in production, console in a TTY, stdlib routed through structlog.

No PHI in logs: patient ids are logged only as ``patient_hash(...)`` (keyed HMAC-SHA256, key from
settings), and the ``redact_phi`` processor drops any field named like an identifier or a raw
value (``patient_id``, ``name``, ``value``, ``vitals``...) before rendering, as a second line of
defence.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sys
from typing import Any

import structlog

from vigil.infra.settings import get_settings

# Keys that must never reach a log line in clear.
PHI_KEYS = frozenset(
    {
        "patient_id",
        "patient",
        "name",
        "given",
        "family",
        "birth_date",
        "dob",
        "mrn",
        "value",
        "values",
        "vitals",
        "raw",
        "payload",
        "original",
        "address",
        "phone",
    }
)


def patient_hash(patient_id: str) -> str:
    key = get_settings().log_hash_key.get_secret_value().encode()
    return hmac.new(key, patient_id.encode(), hashlib.sha256).hexdigest()[:16]


def redact_phi(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in list(event_dict):
        if key in PHI_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


# Tracebacks as data (a ``exception`` list of frames in the JSON line), never with the frames'
# local variables: a local may hold a patient's record.
_dict_tracebacks = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def configure_logging(fmt: str | None = None, level: str | None = None) -> None:
    settings = get_settings()
    fmt = fmt or settings.log_format
    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: list[Any] = (
        [structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)]
        if fmt == "console"
        else [_dict_tracebacks, structlog.processors.JSONRenderer()]
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_phi,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or settings.log_level).upper())
    for noisy in ("aiokafka", "kafka", "faust", "mode", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
