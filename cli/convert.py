"""``vigil convert``: show the Vigil events a FHIR or HL7v2 file maps to, without Kafka.

An integrator checks a mapping with it: every mapped event prints as one JSON line (the exact
record ingest publishes on ``vigil.events``), rejections print to stderr with their dead-letter
reason, and ``--json`` ends stdout with a summary line (events, rejected, unknown codes by
``system|code``) for scripts.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import typer

from vigil.cli.jsonout import emit_json

Format = Literal["fhir", "hl7v2"]


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)


def convert(
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="FHIR JSON/NDJSON or HL7v2 file"),
    ],
    source: Annotated[str, typer.Option("--from", help="Input format: fhir or hl7v2")] = "fhir",
    as_json: Annotated[bool, typer.Option("--json", help="End with a one-line JSON summary")] = False,
    tz: Annotated[
        str | None,
        typer.Option(
            "--tz",
            help="IANA zone of HL7v2 times sent without an offset (MSH-7 has none either); "
            "default: VIGIL_INGEST__HL7_TIMEZONE",
        ),
    ] = None,
) -> None:
    """Print the Vigil events FILE maps to, one JSON object per line."""
    from vigil.infra.settings import get_settings
    from vigil.schemas.codecs.fhir import decode_fhir
    from vigil.schemas.codecs.hl7v2 import decode_hl7v2
    from vigil.schemas.codecs.loinc import DecodeResult
    from vigil.schemas.times import iana_zone

    if source not in ("fhir", "hl7v2"):
        raise typer.BadParameter("must be fhir or hl7v2", param_hint="--from")
    ingest = get_settings().ingest
    zone = ingest.hl7_zone() if tz is None else iana_zone(tz, "--tz")  # as the agents read the feed
    payload = file.read_bytes()
    units = ingest.units()  # which results are scored, which moves end a stay
    if source == "hl7v2":
        results = [decode_hl7v2(payload, default_tz=zone, units=units)]
    elif file.suffix.lower() == ".ndjson":
        # FHIR bulk-data export format: one resource per line
        results = [decode_fhir(line, units) for line in payload.splitlines() if line.strip()]
    else:
        results = [decode_fhir(payload, units)]

    total = DecodeResult()
    now = datetime.now(UTC)
    for decoded in results:
        total.extend(decoded.checked(now))  # canonical unit, plausible range, clock: as the interop agent
    for event in total.events:
        sys.stdout.write(event.model_dump_json() + "\n")
    for rejected in total.rejected:
        sys.stderr.write(f"rejected {rejected.reason}: {rejected.detail}\n")
    for ignored in total.ignored:
        sys.stderr.write(f"ignored {ignored.reason}: {ignored.detail}\n")
    failed = not total.events and bool(total.rejected)
    if as_json:
        emit_json({"ok": not failed, **total.summary()})
    if failed:
        sys.stderr.write(
            f"error: nothing in {file} maps to a Vigil event ({len(total.rejected)} rejected, reasons above; "
            f"--from {source}? see docs/interop.md)\n"
        )
        raise typer.Exit(code=1)
