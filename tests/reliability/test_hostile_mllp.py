"""`vigil mllp` under hostile TCP, against the session's real broker: a 128 MiB frame (the limit is
1 MiB), 32 MiB outside any frame, and more connections than it serves, each loaded with a frame just
under the limit. Its memory stays bounded, every input is answered or
dead-lettered, and a valid message afterwards is still answered AA."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.reliability.helpers import report, rss_kb
from vigil.bench.mllp import read_frame, start_listener
from vigil.infra.workers import worker_env
from vigil.schemas import topics
from vigil.schemas.codecs.mllp import END, START, frame

pytestmark = pytest.mark.reliability
MIB = 1024 * 1024
VALID = (
    b"MSH|^~\\&|MON|ICU|VIGIL|H|{now}||ORU^R01|OK{n}|P|2.5.1\rPID|1||hostile-mllp^^^H^MR\r"
    b"OBX|1|NM|8867-4^Heart rate^LN||88|/min|||||F|||{now}\r"
)


def valid(n: int) -> bytes:
    now = time.strftime("%Y%m%d%H%M%S+0000", time.gmtime()).encode()
    return VALID.replace(b"{now}", now).replace(b"{n}", str(n).encode())


class Peak:
    """The listener's highest RSS, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.kb, self._stop = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.kb = max(self.kb, rss_kb(self.pid) or 0)
            time.sleep(0.05)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_flood_over_mllp_keeps_the_listener_bounded_and_answering(stack, stack_settings, results_dir) -> None:
    from vigil.infra.connect import consumer_from_now

    env = {**worker_env(stack_settings), "VIGIL_MLLP__MAX_CONNECTIONS": "8"}
    proc, port = start_listener(env, "--json")
    dead = consumer_from_now(stack_settings, (topics.DEADLETTER,), consumer_timeout_ms=500)
    try:
        assert port is not None, "vigil mllp did not start"
        time.sleep(1.0)
        baseline = rss_kb(proc.pid) or 0
        t0 = time.perf_counter()
        with Peak(proc.pid) as peak:
            # 1. a 128 MiB frame, sent in 1 MiB pieces: answered AE, never buffered whole
            with socket.create_connection(("127.0.0.1", port), timeout=120) as conn:
                conn.sendall(START + valid(1))
                for _ in range(128):
                    conn.sendall(b"NTE|1||" + b"x" * (MIB - 8) + b"\r")
                conn.sendall(END)
                big = read_frame(conn)
                # 2. 32 MiB outside any frame, then a valid message on the same connection
                for _ in range(32):
                    conn.sendall(b"y" * MIB)
                conn.sendall(frame(valid(2)))
                after_stray = read_frame(conn)
            # 3. 40 connections at once, each with a frame just under the limit: 8 are served
            answers: list[bytes] = []

            def crowd(i: int) -> None:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=120) as c:
                        c.sendall(frame(b"MSH|^~\\&|A|B|C|D|x||ORU^R01|C%d|P|2.5.1\r" % i + b"z" * (MIB - 100)))
                        answers.append(read_frame(c))
                except OSError:
                    answers.append(b"")

            threads = [threading.Thread(target=crowd, args=(i,)) for i in range(40)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=180)
        flood_s = time.perf_counter() - t0
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(frame(valid(3)))
            last = read_frame(conn)
        letters: list[bytes] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(letters) < 3:
            for records in dead.poll(timeout_ms=500, max_records=500).values():
                letters += [r.value for r in records if b'"source_topic":"mllp"' in r.value]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
        dead.close()
    answered = [a for a in answers if a]
    counts = {
        "baseline_rss_mb": round(baseline / 1024, 1),
        "peak_rss_growth_mb": round((peak.kb - baseline) / 1024, 1),
        "flood_mib": 128 + 32 + 40,
        "flood_s": round(flood_s, 1),
        "crowd_connections": 40,
        "crowd_answered": len(answered),
        "crowd_closed_unanswered": 40 - len(answered),
        "dead_letters_seen": len(letters),
        "dead_letter_max_bytes": max((len(v) for v in letters), default=0),
        "summary": out.strip().splitlines()[-1] if out.strip() else "",
    }
    report(results_dir, "hostile_mllp", counts)
    assert b"MSA|AE|OK1|too_large" in big and b"(limit 1048576)" in big, big[:300]  # the listener's limit
    assert b"MSA|AA|OK2|" in after_stray, after_stray[:300]  # the connection survived 32 MiB of junk
    assert b"MSA|AA|OK3|" in last and proc.returncode == 0
    assert all(b"MSA|AE|C" in a for a in answered) and len(answered) >= 8  # the rest closed at once, resent later
    # bounded: 8 connections x the 1 MiB limit plus decoding; the 128 MiB frame is never held whole
    assert counts["peak_rss_growth_mb"] < 40, counts
    assert len(letters) >= 3 and counts["dead_letter_max_bytes"] < 100 * 1024, counts
