"""Times on Vigil's contracts: aware, and normalised to UTC when read.

A time without an offset is refused, not guessed: Python reads a naive time in the host's zone
(``datetime.timestamp()``), so the same record would mean another instant on a worker with
``TZ=America/New_York`` (a 15-minute snooze sent as ``01:10`` ran 5 h 15 min), and the published
JSON Schema's ``date-time`` format (RFC 3339) requires the offset anyway. A time with any offset is
kept as the same instant in UTC, so what Vigil publishes always ends in ``Z`` / ``+00:00``.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from vigil.schemas.errors import UserError


def utc_time(value: datetime) -> datetime:
    """``value`` as the same instant in UTC; a naive time (no offset) is refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise PydanticCustomError("timezone_required", "times must carry a timezone (ISO 8601 with an offset or Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59-14:00 is past datetime's range in UTC: not a ValueError
        raise PydanticCustomError("datetime_out_of_range", "time is out of range in UTC") from None


UtcDatetime = Annotated[datetime, AfterValidator(utc_time)]


def utc_time_as_published(value: datetime) -> datetime:
    """``utc_time`` for a record Vigil itself published: a naive time is read as UTC. Before times
    were checked, a worker copied an acknowledgement's naive time onto its transition as it was; the
    dashboard and ``vigil alerts tail`` read such a record from the topic's retention, and refusing
    it would hide the acknowledgement (an answered alert shown open). Display and FHIR output read
    those times as UTC already."""
    return utc_time(value.replace(tzinfo=UTC) if value.tzinfo is None else value)


PublishedUtcDatetime = Annotated[datetime, AfterValidator(utc_time_as_published)]


def iana_zone(name: str, setting: str) -> tzinfo:
    """The time zone an IANA name (``Europe/Berlin``) names; ``UTC`` in any case. A bad name is a
    ``UserError`` naming ``setting``, one line: a region of the zone database (``Europe``, a folder) is
    said to be one, not an unknown zone. The one reading of every zone setting (the ward's, the HL7
    feed's, ``vigil convert --tz``)."""
    if name.strip().upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise UserError(f"unknown time zone {name!r}: set {setting} to an IANA name such as Europe/Berlin") from None
    except OSError:  # IsADirectoryError: a folder of the database, or a file it cannot read
        raise UserError(
            f"time zone {name!r} is not a zone of the IANA database (a region?): set {setting} to a zone "
            "such as Europe/Paris"
        ) from None
