"""`vigil mllp` on the real broker with the session's worker: an ORU^R01 sent over MLLP is answered
AA and scored, an ADT^A03 answered AA ends the stay; what cannot be used is answered AE and on the
dead letters; the connection survives an oversized message and stray bytes; SIGTERM ends it with its
summary."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unique_patient, wait_for
from vigil.bench.mllp import read_frame, start_listener
from vigil.infra.workers import worker_env
from vigil.schemas.codecs.mllp import frame

pytestmark = pytest.mark.integration
ORU = (Path(__file__).parents[1] / "unit" / "codecs" / "fixtures" / "hl7v2" / "oru_r01_vitals.hl7").read_text()


def oru_for(pid: str, control_id: str, at: datetime) -> bytes:
    """The fixture's vital signs for ``pid``, measured at ``at``, as message ``control_id``."""
    stamp = at.strftime("%Y%m%d%H%M00+0000")
    text = ORU.replace("4420011", pid).replace("MSG20240315143005001", control_id)
    return re.sub(r"2024031514\d{4}\+0000", stamp, text).encode()


def ack_of(conn: socket.socket) -> list[str]:
    data = read_frame(conn)
    assert data, "the listener closed the connection"
    return data[1:-2].decode().split("\r")[1].split("|")  # MSA


@dataclass
class Listener:
    """A running `vigil mllp --json`; after its block, its summary and everything it printed."""

    port: int
    banner: str  # what it prints under its address: which transfers end a stay
    summary: dict[str, Any] = field(default_factory=dict)
    output: str = ""


@contextlib.contextmanager
def mllp_listener(env: dict[str, str]) -> Iterator[Listener]:
    """`vigil mllp` for the block, ended with SIGTERM as a service manager ends it; it must exit 0."""
    proc, port = start_listener(env, "--json", stderr=subprocess.PIPE)
    try:
        assert port is not None, "vigil mllp did not start"
        listener = Listener(port, proc.stdout.readline())  # the line after its address
        yield listener
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    listener.summary, listener.output = json.loads(out.splitlines()[-1]), out + err


def test_messages_over_mllp_are_acknowledged_once_stored_and_scored(
    stack, stack_settings, shared_worker, reader
) -> None:
    env = {**worker_env(stack_settings), "VIGIL_MLLP__MAX_MESSAGE_BYTES": "8192"}
    with mllp_listener(env) as listener:
        r = reader(keep_scores=True)
        pid = unique_patient("mllp")
        at = datetime.now(UTC) - timedelta(hours=1)
        with socket.create_connection(("127.0.0.1", listener.port), timeout=30) as conn:
            conn.sendall(frame(oru_for(pid, f"{pid}-1", at)))
            assert ack_of(conn)[:3] == ["MSA", "AA", f"{pid}-1"]
            adt = b"MSH|^~\\&|EHR|H|VIGIL|H|20261205080000||ORM^O01|ORM1|P|2.5.1\rPID|1||77^^^H^MR\r"
            conn.sendall(frame(adt))
            assert ack_of(conn)[:3] == ["MSA", "AE", "ORM1"]
            big = oru_for(pid, f"{pid}-big", at) + b"NTE|1||" + b"x" * 10_000 + b"\r"
            conn.sendall(frame(big))
            msa = ack_of(conn)
            assert msa[:3] == ["MSA", "AE", f"{pid}-big"] and "limit 8192" in msa[3]
            conn.sendall(b"hello" + frame(oru_for(pid, f"{pid}-2", at + timedelta(minutes=30))))
            assert ack_of(conn)[:3] == ["MSA", "AA", f"{pid}-2"]  # the connection goes on
            assert wait_for(lambda: any(p == pid for p, _ in r.snapshot().last_scores), timeout=60), "scored"
            # the ADT feed's discharge ends the stay the ORU messages opened
            stamp = (at + timedelta(minutes=45)).strftime("%Y%m%d%H%M00+0000")
            a03 = f"MSH|^~\\&|EHR|H|VIGIL|H|{stamp}||ADT^A03^ADT_A03|{pid}-out|P|2.5.1\rEVN|A03|{stamp}\r"
            conn.sendall(frame(a03.encode() + f"PID|1||{pid}^^^H^MR\r".encode()))
            assert ack_of(conn)[:3] == ["MSA", "AA", f"{pid}-out"]
        assert wait_for(lambda: any(s["patient_id"] == pid for s in r.snapshot().stay_records), timeout=60)
        reasons = r.snapshot().dead_letter_reasons
        assert wait_for(
            lambda: all(reasons[k] >= 1 for k in ("unsupported_message", "too_large", "parse_error")), timeout=30
        ), dict(reasons)
    summary = listener.summary
    assert summary["messages"] == 5 and summary["acks"] == {"AA": 3, "AE": 2}
    # the results, with Age and Gender beside each ORU's; 2 unmapped parts, ORM, too large, stray
    assert summary["events"] == 21 and summary["dead_letters"] == 5
    assert pid not in listener.output  # no patient id in its output or logs
    assert listener.banner.startswith("ADT^A02 transfers ignored")  # no monitored units
    assert '"level": "error"' not in listener.output  # a clean stop logs no error
