"""A FHIR ``history`` Bundle (``GET [base]/Observation/lac1/_history``, ``GET [base]/_history``): the
versions of each resource, newest first (FHIR R4 http.html#history). Vigil reads only the newest
version of each resource; the older ones are ignored (``superseded_version``), not dead-lettered.

Every version has its own event id (``ResourceType/id/_history/versionId``), and the patient's
window keeps the value that arrives last for the same second: decoded in the Bundle's order, the
original lactate of 12.0 overwrote its amendment to 1.2. Where the newest version is a deletion
(``request.method`` ``DELETE``, or an entry without a resource), none of the resource's versions is
read (the deletion itself: ``deleted``). A value Vigil read from an earlier payload stays in the
window (docs/interop.md, "Retracted results").

Pure; whatever the JSON, nothing here raises. Used by ``fhir._decode_bundle`` on a whole payload and
by ``fhir_stream.scan_fhir`` in its first pass (a few fields per entry, never the entries).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from vigil.schemas.deadletter import Rejected

# ``Type/id`` at the end of a request URL or a fullUrl (relative or absolute), a ``_history/v`` after it
_RESOURCE_PATH: Final = re.compile(
    r"(?:^|/)([A-Z][A-Za-z]{1,63})/([A-Za-z0-9\-.]{1,64})(?:/_history/([A-Za-z0-9\-.]{1,64}))?/?$"
)
# a version's ETag (R4 http.html#versioning): W/"3"
_ETAG: Final = re.compile(r'^(?:W/)?"([^"]*)"$')


@dataclass(frozen=True)
class EntryVersion:
    """What one history entry says of the version it carries: whose (``Type/id``), which (its
    ``versionId`` when a whole number, else None), when (``meta.lastUpdated``, else the response's
    ``lastModified``; None when not an instant) and whether the version is a deletion."""

    resource: str
    version: int | None
    updated: datetime | None
    deleted: bool


def entry_version(entry: Any) -> EntryVersion | None:
    """The version an entry carries, or None when nothing says whose it is (it is read as it is)."""
    if not isinstance(entry, dict):
        return None
    resource, request, response = (_object(entry.get(name)) for name in ("resource", "request", "response"))
    deleted = not resource or request.get("method") == "DELETE"
    meta = _object(resource.get("meta"))
    kind, rid = resource.get("resourceType"), resource.get("id")
    path = next(
        (match for url in (request.get("url"), entry.get("fullUrl")) if (match := _path(url)) is not None), None
    )
    named = f"{kind}/{rid}" if isinstance(kind, str) and isinstance(rid, str) and kind and rid else None
    at_url = f"{path[0]}/{path[1]}" if path is not None else None
    whose = (at_url or named) if deleted else (named or at_url)  # a DELETE names what it deletes in its URL
    if whose is None:
        return None
    version = _whole(meta.get("versionId"))
    if version is None:
        etag = response.get("etag")
        tag = _ETAG.match(etag.strip()) if isinstance(etag, str) else None
        version = _whole(tag.group(1) if tag else path[2] if path is not None else None)
    updated = _instant(meta.get("lastUpdated")) or _instant(response.get("lastModified"))
    return EntryVersion(whose, version, updated, deleted)


def history_ignores(versions: Sequence[EntryVersion | None]) -> dict[int, Rejected]:
    """The entries (by index) of a history Bundle that are not read, with the ignore each becomes:
    every version of a resource but its newest (``superseded_version``), and where the newest is a
    deletion, that deletion too (``deleted``). The newest: by ``versionId`` where every version of
    the resource has a whole-number one, else by ``lastUpdated`` where every version has one, else
    the first in the Bundle (a history lists the newest first)."""
    by_resource: dict[str, list[int]] = {}
    for index, version in enumerate(versions):
        if version is not None:
            by_resource.setdefault(version.resource, []).append(index)
    ignores: dict[int, Rejected] = {}
    for whose, indexes in by_resource.items():
        newest = _newest([v for i in indexes if (v := versions[i]) is not None], indexes)
        newest_version = versions[newest]
        gone = newest_version is not None and newest_version.deleted
        for index in indexes:
            where = f"entry[{index}] {whose}"
            if index == newest:
                if gone:
                    ignores[index] = Rejected("deleted", f"{where}: deleted, its newest version (history Bundle)")
                continue
            why = f"deleted by entry[{newest}]" if gone else f"superseded by entry[{newest}]"
            detail = f"{where}: an older version, {why} (a history Bundle: only the newest version is read)"
            ignores[index] = Rejected("superseded_version", detail)
    return ignores


def _newest(versions: list[EntryVersion], indexes: list[int]) -> int:
    """The index of the newest of one resource's versions (ties: the first in the Bundle)."""
    if all(v.version is not None for v in versions):
        best = max(range(len(versions)), key=lambda k: (versions[k].version, -k))
    elif all(v.updated is not None for v in versions):
        best = max(range(len(versions)), key=lambda k: (_timestamp(versions[k].updated), -k))
    else:
        best = 0
    return indexes[best]


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _path(url: Any) -> tuple[str, str, str | None] | None:
    if not isinstance(url, str):
        return None
    match = _RESOURCE_PATH.search(url.split("?", 1)[0].strip())
    return (match.group(1), match.group(2), match.group(3)) if match else None


def _whole(value: Any) -> int | None:
    """A versionId that is a whole number (servers count versions 1, 2, 3...; others use opaque ids)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    return None


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def _timestamp(at: datetime | None) -> float:
    try:
        return at.timestamp() if at is not None else float("-inf")
    except (OverflowError, ValueError):
        return float("-inf")
