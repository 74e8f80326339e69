"""Benchmarks: `vigil bench` (pipeline vs bare Faust, latency, batching, Redis size)."""
