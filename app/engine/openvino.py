"""OpenVINO Runtime on the CPU: one compiled model, one infer request per stream, lent to one call at a time.

Precision comes from app.engine.precision (bf16 where the CPU runs it natively). Threads follow the
scheduler's call workers as ONNX Runtime's do: one stream per call that runs at once, at most one per usable
CPU (app.cpus), each stream EMBEDDER_INTRA_OP_THREADS threads (0: the usable CPUs shared among the streams),
so that concurrent calls run side by side as they do on ONNX Runtime, and one call alone (EMBEDDER_WORKERS=1)
can have every core.
"""

from __future__ import annotations

import queue
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from app.config import Settings
from app.cpus import cpu_budget
from app.embedding_meta import EmbeddingMeta
from app.engine.graph import OUTPUT_NAME, check_graph
from app.engine.precision import choose


#: Compiled kernels the CPU plugin keeps per input shape. Its default (5000) grows the process by ~1 GB under
#: traffic of many (batch, length) shapes, which every padded batch is; without it the peak stays near ONNX
#: Runtime's (in-process, 300 mixed shapes on 3 threads: 1086 MB by default, 444 MB at 0, 470 MB at 20). The
#: price is throughput: each call sets its kernels up again (in-process, 90 % short calls: bf16 411 texts/s at
#: 0 against 521 by default, f32 220 against 310; docs/benchmarks.md, Against TEI).
RUNTIME_CACHE_CAPACITY = 0


class OpenVino:
    name = "openvino"

    def __init__(self, compiled, description: dict) -> None:
        self._compiled = compiled
        self._output = compiled.output(OUTPUT_NAME)
        # One request per stream: a request keeps the memory of the largest call it ran, so more requests than
        # streams would only add memory (a call beyond the streams waits for one either way).
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(description["streams"]):
            self._requests.put(compiled.create_infer_request())
        self._description = description
        self.calls_at_once = description["streams"]

    @classmethod
    def load(cls, settings: Settings, graph: Path, meta: EmbeddingMeta) -> OpenVino:
        import openvino as ov

        core = ov.Core()
        capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
        precision = choose(settings.precision, capabilities)
        model = core.read_model(str(graph))
        check_graph([i.get_any_name() for i in model.inputs],
                    {o.get_any_name(): [d.get_length() if d.is_static else None for d in o.get_partial_shape()]
                     for o in model.outputs}, meta, str(graph.relative_to(settings.model_dir)))
        cpus = cpu_budget().cpus
        streams = max(1, min(cpus, settings.call_workers))
        threads = streams * (settings.intra_op_threads or max(1, cpus // streams))
        compiled = core.compile_model(model, "CPU", {
            "INFERENCE_PRECISION_HINT": precision, "NUM_STREAMS": str(streams),
            "INFERENCE_NUM_THREADS": str(threads), "CPU_RUNTIME_CACHE_CAPACITY": str(RUNTIME_CACHE_CAPACITY),
        })
        return cls(compiled, {"engine": cls.name, "version": ov.get_version(), "precision": precision,
                              "cpu_bf16": "BF16" in capabilities, "cpu_capabilities": ",".join(capabilities),
                              "streams": streams, "threads": threads})

    def run(self, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        request = self._requests.get()
        try:
            out = request.infer(dict(feed))[self._output]
            return np.array(out, dtype=np.float32)  # a copy: the request reuses its output tensor
        finally:
            self._requests.put(request)

    def describe(self) -> dict:
        return dict(self._description)
