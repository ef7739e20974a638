"""The model's start-up work, everything /ready waits for on the engine's side, as one job on its own thread.

``prepare`` loads the model, warms it up, runs the accuracy check (app.startcheck) and measures the rate at
the engine's memory peak (app.capacity.calibrate); ``measure_call_overhead`` measures the rest of the cost model
after /ready. Every engine call runs on the executor whose threads will serve, so that
the check's calls run side by side and each serving thread's engine memory is grown at start.

``python -m app`` starts the job (``begin``) right after reading the settings, before it imports the web
stack: the engine compiles and runs (outside the GIL) while Python imports FastAPI and the routes, and
the MCP server loads (app.main). Without a head start (``uvicorn --factory``, the tests) the service
starts the same job from its lifespan.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from app import startcheck
from app.capacity import CostModel, calibrate, call_overhead
from app.config import Settings
from app.model import EmbeddingModel

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
    """Load, warm up, check accuracy, calibrate: see the module's doc."""
    settings = model.settings
    enter("model loading")
    model.load()
    enter("warm-up inference running")
    # One call alone first: the engine's bindings set themselves up on it, and two first calls at once have
    # been seen to deadlock in OpenVINO's (static initialisation waiting for the GIL).
    executor.submit(model.warm_up).result()
    enter("accuracy check running")
    accuracy = startcheck.run(model, settings.precision, log, executor.map)
    enter("calibrating")
    return Prepared(accuracy, calibrate(model, settings, executor))


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
