"""The model's start-up work, everything /ready waits for on the engine's side, as one job on its own thread.

``prepare`` loads the model, warms it up, runs the accuracy check (app.startcheck), timing its calls for the rate
(app.capacity.rate_of) and, where the container's memory limit is below the sizing estimate, runs the engine at its
memory peak to prove the limit (app.capacity.peak_before_ready); ``measure_call_overhead`` measures the rest of the
cost model after /ready. Every engine call runs on the executor whose threads will serve, so that the check's calls
run side by side, as calls run under load.

``python -m app`` starts the job (``begin``) right after reading the settings, before it imports the web
stack: the engine compiles and runs (outside the GIL) while Python imports FastAPI and the routes, and
the MCP server loads (app.main). Without a head start (``uvicorn --factory``, the tests) the service
starts the same job from its lifespan.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from app import memory, startcheck
from app.capacity import CostModel, call_overhead, cost_model, grow_to_peak, peak_before_ready, rate_of
from app.config import Settings
from app.model import EmbeddingModel
from app.sizing import ModelShape, estimate

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    accuracy: dict  # the start check's figure (/ready's "accuracy")
    cost: CostModel


@dataclass
class Startup:
    """The start-up job of one model: its serving threads, its progress and its outcome."""

    model: EmbeddingModel
    executor: ThreadPoolExecutor
    result: Future = field(default_factory=Future)
    phase: str = "model loading"  # what /ready's reason says while it runs

    def run(self) -> None:
        if not self.result.set_running_or_notify_cancel():
            return
        try:
            self.result.set_result(prepare(self.model, self.executor, self._enter))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits the result
            self.result.set_exception(exc)

    def _enter(self, phase: str) -> None:
        self.phase = phase


def serving_executor(settings: Settings) -> ThreadPoolExecutor:
    """The threads that run engine calls: one per call that may run at once."""
    return ThreadPoolExecutor(max_workers=settings.call_workers, thread_name_prefix="engine")


def begin(settings: Settings, model: EmbeddingModel | None = None) -> Startup:
    """Start the start-up job on a thread of its own; its ``result`` says when it is done."""
    job = Startup(model or EmbeddingModel(settings), serving_executor(settings))
    threading.Thread(target=job.run, name="startup", daemon=True).start()
    return job


def prepare(model: EmbeddingModel, executor: ThreadPoolExecutor,
            enter: Callable[[str], None] = lambda phase: None) -> Prepared:
    """Load, warm up, check accuracy, measure the rate (at the memory peak when the limit needs proof): see the
    module's doc."""
    settings = model.settings
    enter("model loading")
    model.load()
    enter("warm-up inference running")
    # One call alone first: the engine's bindings set themselves up on it, and two first calls at once have
    # been seen to deadlock in OpenVINO's (static initialisation waiting for the GIL).
    executor.submit(model.warm_up).result()
    enter("accuracy check running")
    calls = TimedCalls(executor)
    accuracy = startcheck.run(model, settings.precision, log, calls.map)
    if peak_before_ready(memory.read("limit"), estimate(settings, ModelShape.read(settings))):
        enter("running at the memory peak (the memory limit is below the estimate)")
        rate = grow_to_peak(model, settings, executor)
    else:
        rate = rate_of([(model.feed(model.tokenize(texts).ids)["input_ids"].size, s) for texts, s in calls.times])
    return Prepared(accuracy, cost_model(rate, settings))


class TimedCalls:
    """A ``map`` for the start check that runs its calls on ``executor`` and keeps each call's input and seconds
    (``times``: those of the last ``map``, the check's final precision)."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self._executor = executor
        self.times: list[tuple[list[str], float]] = []

    def map(self, fn: Callable[[list[str]], object], items: Iterable[list[str]]) -> Iterator[object]:
        self.times = times = []

        def run(texts: list[str]) -> object:
            start = time.perf_counter()
            out = fn(texts)
            times.append((texts, time.perf_counter() - start))
            return out

        return self._executor.map(run, items)


async def measure_call_overhead(model: EmbeddingModel, settings: Settings, executor: ThreadPoolExecutor,
                                policy) -> None:
    """After /ready: measure a call's fixed cost (app.capacity.call_overhead) and give it to the scheduler's
    ``policy`` (an app.scheduler.Policy), which used app.capacity.PRIOR_OVERHEAD_TOKENS until then."""
    try:
        overhead = await asyncio.to_thread(call_overhead, model, settings, executor)
    except Exception:  # noqa: BLE001 - the prior still works: keep serving with it
        log.warning("could not measure the call overhead; the prior stays", exc_info=True)
        return
    policy.overhead_tokens = overhead
    log.info("call overhead measured", extra={"call_overhead_tokens": round(overhead, 1)})
