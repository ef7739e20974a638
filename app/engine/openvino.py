"""OpenVINO Runtime on the CPU, in two lanes: a call alone gets every usable CPU; calls at once get a stream each.

OpenVINO fixes threads when it compiles a model, so the model is compiled twice from the same graph:

- the **wide** lane: one stream with every usable CPU (app.cpus). A call runs here when no other call is running:
  a lone query's latency (in-process, bf16, 12 tokens, 2 CPUs: 1.65 ms against 2.5-3.2 ms on one thread);
- the **narrow** lanes: one stream per call that runs at once (``EMBEDDER_WORKERS``, at most one per usable CPU),
  ``EMBEDDER_INTRA_OP_THREADS`` threads each (0: the usable CPUs shared among the streams). Calls that start while
  another runs go here, side by side, which beats one wide call at a time under load (b32 x 16 tokens: 1067
  against 875 texts/s) and lets a short call run beside a long one.

Where the narrow lane is already wide (one stream, or one usable CPU) there is one compiled model. The second
costs ~30 MB at bf16, ~50 MB at f32 (its weights in the engine's layout; measured in-process) and is counted by
app.sizing. Each lane has
one infer request per stream, lent to one call at a time: a request keeps the memory of the largest call it
ran, so more requests than streams would only add memory. Which lane runs a call is ``Lanes.pick``, apart so
that it is testable alone. Precision comes from app.engine.precision (bf16 where the CPU runs it natively), the
same for both lanes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np

from app.config import Settings
from app.cpus import cpu_budget
from app.embedding_meta import EmbeddingMeta
from app.engine import timed
from app.engine.graph import OUTPUT_NAME, check_graph
from app.engine.precision import choose


#: Compiled kernels the CPU plugin keeps per input shape. Its default (5000) grows the process by ~1 GB under
#: traffic of many (batch, length) shapes, which every padded batch is; without it the peak stays near ONNX
#: Runtime's (in-process, 300 mixed shapes on 3 threads: 1086 MB by default, 444 MB at 0, 470 MB at 20). The
#: price is throughput: each call sets its kernels up again (in-process, 90 % short calls: bf16 411 texts/s at
#: 0 against 521 by default, f32 220 against 310; docs/benchmarks.md, Against TEI).
RUNTIME_CACHE_CAPACITY = 0


#: A one-text call is padded to a multiple of this many tokens. The CPU plugin prepares its graph again for every
#: new input shape (~3 ms for this model, whatever RUNTIME_CACHE_CAPACITY), so lone queries of lengths that differ
#: from one call to the next paid it every time; with lengths rounded to 16, queries of 8-32 tokens take 2 shapes.
#: In-process, wide lane, bf16, lone queries of 8-32 tokens: p50 8.1 ms as they come, 5.3 ms at 16, 4.0 ms at 32;
#: over HTTP (bench.peer, 1 client) 3.9 ms as they come, 3.1 at 16, 4.8 at 32 (padding's own work shows there). Calls
#: of several texts are not rounded: their shapes vary with their size anyway, and padding every row costs more
#: than it saves (32 clients: 426 requests/s rounded against 480).
LONE_WIDTH_MULTIPLE = 16


def plan(settings: Settings, cpus: int) -> tuple[int, int, int | None]:
    """Streams of the narrow lane, threads per stream, and the wide lane's threads (None: no wide lane)."""
    streams = max(1, min(cpus, settings.call_workers))
    per_stream = settings.intra_op_threads or max(1, cpus // streams)
    return streams, per_stream, cpus if per_stream < cpus else None


class Lanes:
    """Which lane runs the next call: the wide one when no other call is running (and it is free), else a
    narrow one. Counts the calls of each lane."""

    def __init__(self, wide: bool) -> None:
        self._has_wide, self._running = wide, 0  # while the wide lane runs, _running >= 1: it is never lent twice
        self._lock = threading.Lock()
        self.calls = {"wide": 0, "narrow": 0}

    def pick(self) -> str:
        with self._lock:
            lane = "wide" if self._has_wide and self._running == 0 else "narrow"
            self._running += 1
            self.calls[lane] += 1
            return lane

    def done(self) -> None:
        with self._lock:
            self._running -= 1


class _Lane:
    """One compiled model and its infer requests (one per stream)."""

    def __init__(self, compiled, streams: int) -> None:
        self.output = compiled.output(OUTPUT_NAME)
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(streams):
            self.requests.put(compiled.create_infer_request())

    def run(self, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        request = self.requests.get()
        try:
            out = request.infer(dict(feed))[self.output]
            return np.array(out, dtype=np.float32)  # a copy: the request reuses its output tensor
        finally:
            self.requests.put(request)


class OpenVino:
    name = "openvino"
    lone_width_multiple = LONE_WIDTH_MULTIPLE

    def __init__(self, lanes: dict[str, _Lane], description: dict) -> None:
        self._lanes = lanes
        self.lanes = Lanes(wide="wide" in lanes)
        self._description = description
        self.calls_at_once = description["streams"]  # under load: the wide lane runs only when nothing else does

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
        streams, per_stream, wide = plan(settings, cpus)

        def compiled(streams: int, threads: int):
            return core.compile_model(model, "CPU", {
                "INFERENCE_PRECISION_HINT": precision, "NUM_STREAMS": str(streams),
                "INFERENCE_NUM_THREADS": str(threads), "CPU_RUNTIME_CACHE_CAPACITY": str(RUNTIME_CACHE_CAPACITY),
            })

        # The two compilations side by side: much of each runs on one thread (alone, 2 CPUs: 0.16-0.22 s against
        # 0.30 s one after the other).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="compile") as pool:
            wide_compiled = pool.submit(compiled, 1, wide) if wide else None
            lanes = {"narrow": _Lane(compiled(streams, streams * per_stream), streams)}
            if wide_compiled is not None:
                lanes["wide"] = _Lane(wide_compiled.result(), 1)
        return cls(lanes, {"engine": cls.name, "version": ov.get_version(), "precision": precision,
                           "cpu_bf16": "BF16" in capabilities, "cpu_capabilities": ",".join(capabilities),
                           "streams": streams, "threads": streams * per_stream,
                           "wide_lane_threads": wide})

    def run(self, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        lane = self.lanes.pick()
        try:
            return self._lanes[lane].run(feed)
        finally:
            self.lanes.done()

    def run_at_peak(self, feed: Mapping[str, np.ndarray], executor: Executor) -> list[float]:
        """Every narrow stream at once (the narrow lanes' times: the engine as busy as under load), then the
        wide lane alone: each infer request keeps the memory of its largest call. In that order rather than all
        at once, so that no call shares a core (in-process, 2 CPUs, bf16, 4 x 256 tokens, after the first
        growth: 0.22 s against 0.26 s)."""
        times = list(executor.map(lambda _: timed(partial(self.run_on, "narrow"), feed), range(self.calls_at_once)))
        if "wide" in self._lanes:
            self.run_on("wide", feed)
        return times

    def run_on(self, lane: str, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        """One call on the named lane (start-up; the tests compare the lanes' vectors)."""
        return self._lanes[lane].run(feed)

    def describe(self) -> dict:
        return dict(self._description)
