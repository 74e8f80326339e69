"""Redis bytes per patient over every patient in a (bench or demo) Redis, packed as the worker
stores it and as it would be unpacked, and the CPU cost of packing (``infra.redis.pack_state``).

    python -m vigil.bench.redis_size        # the configured stack's Redis (VIGIL_HOME, ports)

Per patient: ``MEMORY USAGE`` of its window, carry, alert and care keys (all four share the keyed
hash). "Unpacked": the same with the window and carry written back unpacked to a probe key (then
deleted), i.e. what Redis held before packing. Writes one probe key at a time: run it on a bench
stack, not on a production Redis.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from vigil.infra.connect import redis_client
from vigil.infra.redis import pack_state, unpack_state
from vigil.infra.settings import Settings, get_settings

PROBE = "vigil:size-probe"


def _stats(values: list[float]) -> dict[str, float]:
    a = np.array(values or [0.0], dtype=float)
    return {"mean": round(float(a.mean()), 1), "p99": round(float(np.percentile(a, 99)), 1), "max": float(a.max())}


def _us(fn: Any, blobs: list[bytes]) -> float:
    """Median µs per blob over five passes."""
    passes = []
    for _ in range(5):
        t0 = time.perf_counter()
        for b in blobs:
            fn(b)
        passes.append((time.perf_counter() - t0) / max(1, len(blobs)) * 1e6)
    return round(float(np.median(passes)), 1)


def measure(settings: Settings) -> dict[str, Any]:
    client = redis_client(settings)
    try:
        hashes = sorted({k.decode().rsplit(":", 1)[1] for k in client.scan_iter(match="vigil:w:*", count=1000)})
        packed_total, unpacked_total, raw_blobs, packed_blobs = [], [], [], []
        for h in hashes:
            keys = {kind: f"vigil:{kind}:{h}" for kind in ("w", "c", "a", "t")}
            usage = {kind: client.memory_usage(key) or 0 for kind, key in keys.items()}
            unpacked = dict(usage)
            for kind in ("w", "c"):
                blob = client.get(keys[kind])
                if not blob:
                    continue
                raw = unpack_state(blob) or b""
                raw_blobs.append(raw)
                packed_blobs.append(blob)
                client.set(PROBE, raw)
                unpacked[kind] = client.memory_usage(PROBE) or 0
            packed_total.append(sum(usage.values()))
            unpacked_total.append(sum(unpacked.values()))
        client.delete(PROBE)
    finally:
        client.close()
    return {
        "patients": len(hashes),
        "bytes_per_patient": _stats(packed_total),
        "unpacked_bytes_per_patient": _stats(unpacked_total),
        "blobs": len(raw_blobs),
        "blob_bytes_unpacked": _stats([len(b) for b in raw_blobs]),
        "blob_bytes_packed": _stats([len(b) for b in packed_blobs]),
        "pack_us_per_blob": _us(pack_state, raw_blobs),
        "unpack_us_per_blob": _us(unpack_state, packed_blobs),
    }


if __name__ == "__main__":
    print(json.dumps(measure(get_settings())))
