"""Kafka's ``metadata.version``: the level a cluster runs at, against the highest its brokers support.
After a broker upgrade the cluster stays at the old level until an operator finalizes it
(docs/operations.md, "Upgrading Kafka"); ``vigil stack status`` shows both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vigil.infra.connect import kafka_admin
from vigil.infra.settings import Settings

FINALIZE_HINT = "every broker upgraded? finalize: docs/operations.md, 'Upgrading Kafka'"


def metadata_version(features: Mapping[str, Mapping[str, Any]]) -> dict[str, object]:
    """``features`` as kafka-python's ``describe_features`` gives them ({name: {"supported": (min, max),
    "finalized": (min, max)}}): the finalized and the highest supported level of ``metadata.version``,
    and whether the one is below the other."""
    entry = features.get("metadata.version", {})
    finalized = (entry.get("finalized") or (None, None))[1]
    supported = (entry.get("supported") or (None, None))[1]
    pending = finalized is not None and supported is not None and finalized < supported
    out: dict[str, object] = {"finalized_level": finalized, "supported_level": supported, "finalize_pending": pending}
    if pending:
        out["hint"] = FINALIZE_HINT
    return out


def read_metadata_version(settings: Settings) -> dict[str, object] | str:
    """``metadata_version`` of the configured cluster, as the broker Vigil reaches first reports it, or
    one line saying why it could not be read (a status reports; it never fails)."""
    try:
        admin = kafka_admin(settings, client_id="vigil-status", request_timeout_ms=5000, bootstrap_timeout_ms=6000)
    except Exception as exc:  # no broker answers: the status says so beside the rest
        return f"not read: {type(exc).__name__}"
    try:
        return metadata_version(admin.describe_features())
    except Exception as exc:
        return f"not read: {type(exc).__name__}"
    finally:
        admin.close()
