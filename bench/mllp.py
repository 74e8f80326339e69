"""The MLLP listener's pace (``vigil mllp``): ORU^R01 messages of a monitor gateway (one hour's
vital signs of one patient, 6 OBX), each sent and its ACK awaited before the next, as MLLP
senders do, on 1 and on 4 connections at once.

    python -m vigil.bench.mllp [--messages 2000] [--json]   # the configured stack (VIGIL_HOME, ports)

Per message: the time from the first byte sent to the ACK read (decode, the broker's ``acks=all`` on
every record, the ACK), and messages/s per run; the listener's RSS. The events land on
``vigil.events.raw`` like any intake's: run it on a bench stack (no worker is needed, none is
started). ``vigil bench`` runs it last: its events wait, unread, for the next worker of the bench's
group, and a phase after it would have measured them inside its own span."""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import numpy as np

from vigil.bench.harness import rss_mb
from vigil.infra.settings import Settings, get_settings
from vigil.infra.workers import worker_env
from vigil.schemas.codecs.mllp import END, frame

VITALS = (
    ("8867-4", "Heart rate", 88, "/min"),
    ("9279-1", "Respiratory rate", 18, "/min"),
    ("59408-5", "Oxygen saturation", 96, "%"),
    ("8310-5", "Body temperature", 37.1, "Cel"),
    ("8480-6", "Systolic blood pressure", 121, "mm[Hg]"),
    ("8462-4", "Diastolic blood pressure", 74, "mm[Hg]"),
)


def oru(patient: str, n: int, minutes_ago: int) -> bytes:
    at = time.strftime("%Y%m%d%H%M00+0000", time.gmtime(time.time() - 60 * minutes_ago))
    segments = [
        f"MSH|^~\\&|GATEWAY|ICU|VIGIL|H|{at}||ORU^R01^ORU_R01|{patient}-{n}|P|2.5.1",
        f"PID|1||{patient}^^^H^MR",
        f"OBR|1|||85353-1^Vital signs^LN|||{at}",
    ]
    for i, (code, name, value, unit) in enumerate(VITALS, 1):
        segments.append(f"OBX|{i}|NM|{code}^{name}^LN||{value}|{unit}|||||F|||{at}")
    return ("\r".join(segments) + "\r").encode()


def read_frame(conn: socket.socket) -> bytes:
    """One MLLP frame as the listener sent it (an ACK), or b"" when it closed the connection first."""
    data = b""
    while not data.endswith(END):
        chunk = conn.recv(4096)
        if not chunk:
            return b""
        data += chunk
    return data


def start_listener(env: dict[str, str], *args: str, stderr: Any = subprocess.DEVNULL) -> tuple[Any, int | None]:
    """``vigil mllp --port 0 ARGS`` with ``env``, and the port it bound (None: it did not start)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vigil.cli", "mllp", "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    for line in iter(proc.stdout.readline, ""):  # type: ignore[union-attr]
        if m := re.search(r"MLLP on [\d.]+:(\d+)", line):
            return proc, int(m.group(1))
    return proc, None


def _sender(port: int, messages: list[bytes], latencies: list[float], codes: list[str]) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        for message in messages:
            t0 = time.perf_counter()
            conn.sendall(frame(message))
            data = read_frame(conn)
            if not data:
                raise ConnectionError("the listener closed the connection")
            latencies.append((time.perf_counter() - t0) * 1000)
            codes.append(data.split(b"\rMSA|")[1][:2].decode())


def run(port: int, messages: int, connections: int) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    per = messages // connections
    latencies: list[float] = []
    codes: list[str] = []
    batches = [[oru(f"m{run_id}-{c}-{i % 50}", i, minutes_ago=per - i) for i in range(per)] for c in range(connections)]
    threads = [threading.Thread(target=_sender, args=(port, b, latencies, codes)) for b in batches]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    ms = np.array(latencies or [0.0])
    return {
        "connections": connections,
        "messages": len(latencies),
        "accepted": codes.count("AA"),
        "messages_per_s": round(len(latencies) / seconds, 1),
        "events_per_s": round(len(latencies) * len(VITALS) / seconds, 1),
        "ack_p50_ms": round(float(np.percentile(ms, 50)), 2),
        "ack_p99_ms": round(float(np.percentile(ms, 99)), 2),
    }


def measure_mllp(settings: Settings, messages: int = 2000, connections: tuple[int, ...] = (1, 4)) -> dict[str, Any]:
    """Start a listener on a free port, run each connection count, stop it."""
    proc, bound = start_listener(worker_env(settings, {"VIGIL_LOG_LEVEL": "WARNING"}))
    try:
        if bound is None:
            return {"error": "vigil mllp did not start"}
        runs = [run(bound, messages, c) for c in connections]
        return {"runs": runs, "listener_rss_mb": round(rss_mb(proc.pid), 1), "obx_per_message": len(VITALS)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure_mllp(get_settings(), args.messages)
    for r in result.get("runs", []):
        print(
            f"{r['connections']} connection(s): {r['messages_per_s']} messages/s ({r['events_per_s']} events/s), "
            f"ACK p50 {r['ack_p50_ms']} ms, p99 {r['ack_p99_ms']} ms, {r['accepted']}/{r['messages']} AA"
        )
    print(f"listener RSS {result.get('listener_rss_mb')} MB")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
