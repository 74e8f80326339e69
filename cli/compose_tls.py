"""``vigil stack compose-tls``: the certificates of docker-compose's Kafka, Redis and dashboard: a CA
whose certificate Vigil's containers check Kafka and Redis against, and each server's key and
certificate for its host names."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Final

import typer

from vigil.cli.jsonout import emit_json
from vigil.infra.secrets import write_private_together
from vigil.schemas.errors import UserError

# each server (the name its certificate is issued to, with localhost, its healthcheck's, and its
# compose services' names): its file and the uid of its image's user, who must own the file
SERVERS: Final = {
    "kafka": ("kafka.pem", 1000),  # apache/kafka's appuser
    "redis": ("redis.pem", 999),  # the redis image's redis
    "web": ("web.pem", 10001),  # Vigil's image (the dashboard and POST /fhir over HTTPS)
}
# compose's Kafka nodes share kafka.pem: each presents it to clients and, as the controllers' client
# certificate, to the others (its CN, kafka, is the controllers' super user: deploy/kafka-start.sh)
SERVICES: Final = {"kafka": ("kafka-1", "kafka-2", "kafka-3")}


def compose_tls(
    out: Path = typer.Option(
        Path("deploy/tls"), "--out", help="the folder to write ca.pem, kafka.pem, redis.pem, web.pem into"
    ),
    kafka_host: Annotated[
        list[str] | None,
        typer.Option("--kafka-host", help="another name (or IP address) clients reach Kafka by; repeat for more"),
    ] = None,
    redis_host: Annotated[
        list[str] | None,
        typer.Option("--redis-host", help="another name (or IP address) clients reach Redis by; repeat for more"),
    ] = None,
    web_host: Annotated[
        list[str] | None,
        typer.Option(
            "--web-host", help="a name (or IP address) browsers reach the dashboard by, e.g. vigil.icu.example.org"
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line")] = False,
) -> None:
    """Write a new CA (ca.pem; its key is not kept) and, signed by it, Kafka's, Redis' and the
    dashboard's keys and certificates (kafka.pem, redis.pem, web.pem: mode 0600, give each its
    image's user: uid 1000 for Kafka, 999 for Redis, 10001 for Vigil's) for compose's service names
    (kafka and its nodes kafka-1 to kafka-3, redis, web), localhost and the names given. Browsers
    trust the dashboard's once ca.pem is installed as a CA, or give the web service your hospital's
    certificate instead. Valid a year: run it again to renew them all, then recreate the stack.
    Replaces the files that are there, all four or none."""
    from vigil.infra.stack.tls import CERT_DAYS, issue_ca, issue_server_pem

    if not out.is_dir():
        raise UserError(f"{out} is not a folder: create it (mkdir -p {out}), or give --out another path")
    extra = {"kafka": kafka_host or [], "redis": redis_host or [], "web": web_host or []}
    for option, hosts in extra.items():
        for host in hosts:
            if not _host_name(host.strip()):
                raise UserError(
                    f"--{option}-host {host!r} is neither a host name (letters, digits, hyphens and dots; "
                    "*. first for a wildcard) nor an IP address: give the name clients reach it by"
                )
    ca_key, ca_pem = issue_ca("Vigil compose CA")
    names: dict[str, list[str]] = {}
    pems: dict[Path, bytes] = {}
    for server, (file, _uid) in SERVERS.items():
        given = (h.strip() for h in extra[server] if h.strip())
        names[server] = list(dict.fromkeys([server, *SERVICES.get(server, ()), "localhost", *given]))
        pems[out / file] = issue_server_pem(ca_key, ca_pem, names[server])
    ca_file = out / "ca.pem"
    # the four together or none: servers presenting certificates of a CA their clients do not trust
    # yet (ca.pem not replaced) could not be reached by anyone. ca.pem is public: every container reads it
    write_private_together(pems | {ca_file: ca_pem}, modes={ca_file: 0o644})
    chown = " && ".join(f"sudo chown {uid} {out / file}" for file, uid in SERVERS.values())
    typer.echo(
        f"wrote {ca_file}, {', '.join(str(out / f) for f, _ in SERVERS.values())} ({CERT_DAYS} days); next: {chown}"
    )
    if json_out:
        emit_json({"ca": str(ca_file), "servers": names, "folder": str(out), "days": CERT_DAYS})


_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _host_name(host: str) -> bool:
    """A DNS name a certificate may be issued to (RFC 1123 labels, one leading ``*.`` wildcard), or an
    IP address."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.removeprefix("*.").split(".")
    return 0 < len(host) <= 253 and all(_LABEL.match(label) for label in labels)
