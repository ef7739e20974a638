"""ONNX Runtime (CPU execution provider): one InferenceSession, shared by every call worker."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import Executor
from pathlib import Path

import numpy as np

from app.config import Settings
from app.embedding_meta import EmbeddingMeta
from app.engine import timed
from app.engine.graph import OUTPUT_NAME, check_graph


class OnnxRuntime:
    name = "onnxruntime"
    lone_width_multiple = 1  # its kernels take any shape as it comes: padding would only add work

    def __init__(self, session, settings: Settings) -> None:
        self._session = session
        self._settings = settings
        self.calls_at_once = settings.call_workers  # one session, run by every call worker

    @classmethod
    def load(cls, settings: Settings, graph: Path, meta: EmbeddingMeta) -> OnnxRuntime:
        from onnxruntime import GraphOptimizationLevel, InferenceSession, SessionOptions

        s = settings
        opts = SessionOptions()
        opts.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = s.intra_op_threads
        opts.inter_op_num_threads = s.inter_op_threads
        opts.log_severity_level = 3
        # Spinning pool threads take ~1.6 of 2 cores at one client for a few % of latency
        # (docs/scheduling.md, "ORT thread spinning"); when on, they still stop as soon as a Run() returns,
        # so the event loop thread gets the CPU back between calls.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if s.ort_spinning else "0")
        opts.add_session_config_entry("session.force_spinning_stop", "1")
        # The arena keeps its peak; the call budget (EMBEDDER_MAX_BATCH_TOKENS) is what bounds that peak.
        opts.enable_cpu_mem_arena = s.ort_arena
        session = InferenceSession(str(graph), opts, providers=["CPUExecutionProvider"])
        check_graph([i.name for i in session.get_inputs()], {o.name: o.shape for o in session.get_outputs()},
                    meta, str(graph.relative_to(s.model_dir)))
        return cls(session, settings)

    def run(self, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        (out,) = self._session.run([OUTPUT_NAME], dict(feed))
        return np.asarray(out, dtype=np.float32)

    def run_at_peak(self, feed: Mapping[str, np.ndarray], executor: Executor) -> list[float]:
        """One call per worker at once: the arena grows to the largest calls running together."""
        return list(executor.map(lambda _: timed(self.run, feed), range(self.calls_at_once)))

    def describe(self) -> dict:
        import onnxruntime

        s = self._settings
        return {"engine": self.name, "version": onnxruntime.__version__, "precision": "f32",
                "intra_op_threads": s.intra_op_threads,
                "spinning": s.ort_spinning}

