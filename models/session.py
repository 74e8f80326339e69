"""onnxruntime sessions with an explicit provider list (CUDA first when present, else CPU)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

log = logging.getLogger(__name__)

PREFERRED_PROVIDERS: tuple[str, ...] = ("CUDAExecutionProvider", "CPUExecutionProvider")


def choose_providers(available: Sequence[str], prefer_gpu: bool = True) -> list[str]:
    """Providers to request, in order: CUDA (if available and wanted), then CPU (always last)."""
    wanted = PREFERRED_PROVIDERS if prefer_gpu else ("CPUExecutionProvider",)
    chosen = [p for p in wanted if p in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


def create_session(
    path: str | Path | bytes,
    *,
    intra_op_threads: int | None = None,
    inter_op_threads: int = 1,
    prefer_gpu: bool = True,
) -> ort.InferenceSession:
    """An InferenceSession on the best available provider; logs which provider actually runs."""
    opts = ort.SessionOptions()
    if intra_op_threads:
        opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = inter_op_threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = choose_providers(ort.get_available_providers(), prefer_gpu)
    model = path if isinstance(path, bytes) else str(path)
    session = ort.InferenceSession(model, sess_options=opts, providers=providers)
    running = session.get_providers()
    name = "<bytes>" if isinstance(path, bytes) else Path(path).name
    if providers[0] not in running:
        log.warning("onnx session %s requested %s but runs on %s", name, providers[0], running)
    log.info("onnx session %s runs on %s", name, running[0])
    return session
