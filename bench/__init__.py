"""Benchmarks: `vigil bench` (pipeline vs bare Faust, latency, batching, Redis size)."""

import vigil.models  # noqa: F401  onnxruntime's telemetry off before a bench module loads onnxruntime
