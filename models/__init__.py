"""Features, ONNX sessions, batching and training.

onnxruntime (1.29 and later) sends usage telemetry from Linux to Microsoft by default: the
executable's path, the OS, the models' opsets and counts and durations of inference (a hospital's
patient throughput), with a device id, queued in ``~/.cache/Microsoft/DeveloperTools/.onnxruntime``
until an upload succeeds (2,187 events waited there on a development machine whose network refused
them). A hospital's early-warning engine does not phone home: every process that imports
``vigil.models`` (which the other rooms that load onnxruntime, the benchmarks, import first) turns it
off before onnxruntime is loaded, which is when it reads ``ORT_DISABLE_TELEMETRY``. An operator who
wants to send it sets ``ORT_DISABLE_TELEMETRY=0`` (docs/security.md)."""

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
