"""``vigil stack kafka-tls``: the certificates of docker-compose's Kafka: a CA whose certificate Vigil's
containers check the broker against, and the broker's key and certificate for its host name."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.jsonout import emit_json
from vigil.infra.secrets import write_private
from vigil.schemas.errors import UserError

KAFKA_IMAGE_UID = 1000  # apache/kafka's appuser


def kafka_tls(
    out: Path = typer.Option(Path("deploy/kafka"), "--out", help="the folder to write ca.pem and broker.pem into"),
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="a name (or IP address) clients reach the broker by; repeat for more"),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """Write a new CA (ca.pem; its key is not kept) and the broker's key and certificate signed by it
    (broker.pem, mode 0600: give it the Kafka image's user, uid 1000) for the broker's names (default:
    kafka, compose's service name, and localhost, its healthcheck's). Valid a year: run it again to
    renew both, then restart the stack. Replaces the files that are there."""
    from vigil.infra.stack.tls import CERT_DAYS, issue_ca, issue_server_pem

    names = list(dict.fromkeys(h.strip() for h in (host or ["kafka"]) if h.strip()))
    if not names:
        raise UserError("--host needs a name, e.g. --host kafka")
    names += [] if "localhost" in names else ["localhost"]
    if not out.is_dir():
        raise UserError(f"{out} is not a folder: create it (mkdir -p {out}), or give --out another path")
    ca_key, ca_pem = issue_ca("Vigil Kafka CA")
    write_private(out / "broker.pem", issue_server_pem(ca_key, ca_pem, names))
    ca_file = out / "ca.pem"
    ca_file.write_bytes(ca_pem)
    ca_file.chmod(0o644)  # public: every Vigil container reads it
    typer.echo(
        f"wrote {ca_file} and {out / 'broker.pem'} (for {', '.join(names)}, {CERT_DAYS} days); "
        f"next: sudo chown {KAFKA_IMAGE_UID} {out / 'broker.pem'}"
    )
    if json_out:
        emit_json({"ca": str(ca_file), "broker": str(out / "broker.pem"), "names": names, "days": CERT_DAYS})
