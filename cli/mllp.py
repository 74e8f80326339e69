"""``vigil mllp``: the HL7v2 listener (MLLP over TCP, ACK after the broker has each message's
records; ``agents.mllp``). It runs until Ctrl-C or SIGTERM, then prints what it received."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from vigil.cli.jsonout import emit_json
from vigil.infra.settings import get_settings

console = Console()
JsonFlag = Annotated[bool, typer.Option("--json", help="print a JSON summary as the last line when it stops")]
BootstrapOpt = Annotated[str | None, typer.Option("--bootstrap", help="Kafka bootstrap (default: settings)")]


def mllp(
    host: Annotated[str | None, typer.Option(help="listen address (default: settings, loopback)")] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help="listen port (default: settings, 2575; 0: any free one)")
    ] = None,
    metrics_port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="serve /metrics on this loopback port (vigil_mllp_*)")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="MLLP over TLS: the certificate chain, PEM (VIGIL_MLLP__TLS_CERT)")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="its private key, PEM, if not in --tls-cert")] = None,
    tls_client_ca: Annotated[
        Path | None, typer.Option(help="require senders' certificates signed by this CA (mutual TLS)")
    ] = None,
    bootstrap: BootstrapOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Receive HL7v2 ORU^R01 over MLLP (interface engines, monitor gateways) and answer each message
    with an ACK once its events are stored: AA accepted, AE its content cannot be used (on the dead
    letters), AR not stored now (send again). Runs until Ctrl-C or SIGTERM."""
    import asyncio
    import signal
    from collections.abc import Sequence

    from vigil.agents.mllp import Tally, serve, server_tls
    from vigil.cli.preflight import require_broker, require_free_port, require_topics, settings_for
    from vigil.infra.connect import kafka_producer
    from vigil.infra.logging import configure_logging
    from vigil.infra.publish import Record, send_and_wait

    settings = settings_for(get_settings(), bootstrap)
    given = {"tls_cert": tls_cert, "tls_key": tls_key, "tls_client_ca": tls_client_ca}
    limits = settings.mllp.model_copy(update={k: v for k, v in given.items() if v is not None})
    tls = server_tls(limits)  # a missing or unusable file: one line, before anything starts
    host, port = host or limits.host, limits.port if port is None else port
    require_broker(settings)
    require_topics(settings)
    require_free_port(host, port)
    configure_logging()
    metrics_port = metrics_port or settings.metrics_port
    if metrics_port:
        from prometheus_client import start_http_server

        # prometheus_client binds the host's first address only, dual-stack
        require_free_port(
            settings.metrics_host, metrics_port, "VIGIL_METRICS_HOST", "--metrics-port", binds="first_address"
        )
        from vigil.infra.metrics import registry_outside_worker

        start_http_server(metrics_port, addr=settings.metrics_host, registry=registry_outside_worker())
    producer = kafka_producer(settings, linger_ms=2, retries=5, client_id="vigil-mllp")
    tally = Tally()
    units = settings.ingest.units()

    def publish(records: Sequence[Record]) -> None:
        send_and_wait(producer, records)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(s, stop.set)
        await serve(publish, limits, host, port, stop, tally, listening, units)

    def listening(bound: int) -> None:
        how = "" if tls is None else " over TLS" + (", client certificates required" if limits.tls_client_ca else "")
        console.print(f"MLLP on {host}:{bound}{how}: HL7v2 ORU^R01 in, ACK out (Ctrl-C to stop)", highlight=False)
        monitored, away = ", ".join(sorted(units.monitored)), ", ".join(sorted(units.away))
        console.print(
            f"ADT^A02 out of {monitored} ends a stay"
            + (f"; away: {away}" if away else "")
            + "; ORU^R01 from other units ignored"
            if monitored
            else "ADT^A02 transfers ignored (VIGIL_INGEST__MONITORED_UNITS unset)",
            highlight=False,
        )

    try:
        asyncio.run(run())
    finally:
        producer.close(timeout=10)
    s = tally.summary()
    console.print(
        f"{s['messages']} messages on {s['connections']} connections: {s['events']} events, "
        f"{s['dead_letters']} dead letters, acks {dict(tally.acks) or '-'}",
        highlight=False,
    )
    if tally.ignored_units:  # a unit missing from the monitored ones: its patients were not scored
        named = ", ".join(f"{unit} x{n}" for unit, n in tally.ignored_units.most_common(10))
        console.print(f"results ignored from units neither monitored nor away: {named}", highlight=False)
    if json_out:
        emit_json(s)


def register(app: typer.Typer) -> None:
    app.command("mllp")(mllp)
