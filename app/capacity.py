"""Capacity: settings that could never work are refused, a memory limit below the estimate is proved at start,
and the cost model is measured.

The scheduler (app.scheduler) groups texts by a call's fixed overhead against its padded tokens,
and admission (app.admission) and the drain estimate need padded tokens per second. Both depend on
the machine, the model and the thread settings, so they are measured at start: the rate before /ready says 200
(from the start check's calls, or from the peak run when one is needed), the overhead right after.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import Executor
from dataclasses import dataclass
from statistics import median

from app import memory
from app.config import Settings
from app.cpus import cpu_budget
from app.engine import timed
from app.model import EmbeddingModel
from app.sizing import MemoryEstimate, ModelShape, estimate

log = logging.getLogger(__name__)


#: A call's fixed cost, in padded tokens, until start-up measures it (after /ready): what this model measured on
#: 2 CPUs (bf16 22-23, ONNX Runtime f32 ~20). The scheduler only uses it to weigh one call against padding.
PRIOR_OVERHEAD_TOKENS = 20.0


@dataclass(frozen=True)
class CostModel:
    tokens_per_second: float  # of one call while the engine runs as many as it can at once
    overhead_tokens: float  # a call's fixed cost, in padded tokens


def check_capacity(settings: Settings, max_seq_length: int) -> None:
    """Refuse settings under which one text or one full request could never run."""
    if settings.max_batch_tokens < max_seq_length:
        raise ValueError(
            f"EMBEDDER_MAX_BATCH_TOKENS={settings.max_batch_tokens} is below the model's max_seq_length "
            f"({max_seq_length}): one long text would not fit a call; raise it to {max_seq_length} or more"
        )
    full = settings.max_inputs * max_seq_length
    if settings.max_queued_tokens < full:
        raise ValueError(
            f"EMBEDDER_MAX_QUEUED_TOKENS={settings.max_queued_tokens} is below one full request "
            f"(EMBEDDER_MAX_INPUTS={settings.max_inputs} x {max_seq_length} tokens = {full}): it could never "
            f"be admitted; raise it or lower EMBEDDER_MAX_INPUTS"
        )


def peak_before_ready(limit_bytes: float, sized: MemoryEstimate) -> bool:
    """Whether start-up must prove the memory limit by running the engine at its peak before /ready: only when the
    container's limit is below the sizing estimate's peak. With no limit nothing can OOM-kill the service; with a
    limit at or above the estimate (which is conservative: docs/scheduling.md, Memory; ``memory-check`` holds the
    worst admitted load under it) the arithmetic already proves it, and the peak run would cost ~0.45 s of every
    start (2 CPUs, bf16). Below the estimate only the real run can tell: a limit that is too small then fails at
    start, not under load."""
    return not math.isnan(limit_bytes) and limit_bytes < sized.peak_mb * (1 << 20)


def grow_to_peak(model: EmbeddingModel, settings: Settings, executor: Executor) -> float:
    """Run the full call (max-length texts up to the call budget) on everything of the engine that keeps memory
    per call (``Engine.run_at_peak``), on the threads that will serve (``executor``), so that the engine's memory
    is at its peak now; return padded tokens per second of one call, the median of those that ran while the engine
    was as busy as under load (a little low: the first growth is in it)."""
    s, limit = settings, model.info.max_seq_length
    ids = model.tokenize(["calibration " * limit]).ids[0]
    full = [ids] * max(1, min(s.max_batch, s.max_batch_tokens // len(ids)))
    times = model.engine.run_at_peak(model.feed(full), executor)
    return len(full) * len(ids) / median(times)


def rate_of(calls: list[tuple[int, float]]) -> float:
    """Padded tokens per second of one call, from the start check's calls (padded tokens, seconds), which ran
    side by side as calls run under load: the largest ones' (their fixed cost weighs least). A first figure for
    drain estimates and ``Retry-After``; traffic refines it (app.metrics)."""
    largest = max(tokens for tokens, _ in calls)
    return largest / median([seconds for tokens, seconds in calls if tokens == largest])


def cost_model(rate: float, settings: Settings) -> CostModel:
    """The measured ``rate``, and the call overhead: EMBEDDER_CALL_OVERHEAD_TOKENS, or else PRIOR_OVERHEAD_TOKENS
    until ``call_overhead`` measures it after /ready (it protects nothing, and its calls took ~0.1 s of every
    start)."""
    overhead = PRIOR_OVERHEAD_TOKENS if settings.call_overhead_tokens is None else settings.call_overhead_tokens
    return CostModel(rate, overhead)


def call_overhead(model: EmbeddingModel, settings: Settings, executor: Executor) -> float:
    """A call's fixed cost in padded tokens: a call of one short text against one of many such texts; the
    difference gives the cost per token, and the one-text call's time beyond its tokens is the fixed cost of a
    call. Medians of a few runs: start-up is noisy. Blocks; runs its calls on ``executor``."""
    s, limit = settings, model.info.max_seq_length

    def on_executor(batch: list[list[int]]) -> float:
        return executor.submit(timed, model.run, batch).result()

    short = model.tokenize(["calibration " * 30]).ids[0][: min(32, limit)]
    many = [short] * max(2, min(s.max_batch, s.max_batch_tokens // len(short), 16))
    one = median([on_executor([short]) for _ in range(3)])
    all_ = median([on_executor(many) for _ in range(2)])
    per_token = max(all_ - one, 1e-9) / ((len(many) - 1) * len(short))
    return max(0.0, one / per_token - len(short))


def memory_warning(limit_bytes: float, sized: MemoryEstimate) -> str | None:
    """What to do when the container's memory limit is below the estimated peak (None when it is not, or
    when there is no limit): the worst admitted load would get the service OOM-killed. The same condition as
    ``peak_before_ready``: such a start has run the engine at its peak and survived, but traffic may add more."""
    if not peak_before_ready(limit_bytes, sized):
        return None
    return (
        f"the container's memory limit ({limit_bytes / (1 << 20):.0f} MiB) is below the estimated peak "
        f"({sized.peak_mb:.0f} MiB): give it {sized.limit_mb} MiB, or lower EMBEDDER_WORKERS, "
        "EMBEDDER_MAX_BATCH_TOKENS or EMBEDDER_MAX_QUEUED_TOKENS (python -m app.sizing; docs/scheduling.md, Memory)"
    )


def log_capacity(settings: Settings, cost: CostModel, drain_s: float, engine: dict) -> None:
    """One log line with what was chosen and measured (``engine``: engine, version, precision, CPU
    capabilities); a warning when the drain may outlast the timeout, and one when the container's memory
    limit is below the sizing estimate."""
    s, cpus = settings, cpu_budget()
    sized, limit = estimate(s, ModelShape.read(s)), memory.read("limit")
    fields = {
        **engine,
        "cpus": cpus.cpus,
        "cpus_from": cpus.source,
        "cpu_quota": cpus.quota,
        "affinity_cpus": cpus.affinity,
        "workers": s.call_workers,
        "intra_op_threads": s.intra_op_threads,
        "tokens_per_second_per_call": round(cost.tokens_per_second),
        "call_overhead_tokens": round(cost.overhead_tokens, 1),
        "max_queued_tokens": s.max_queued_tokens,
        "drain_estimate_s": round(drain_s, 1),
        "graceful_timeout_s": s.graceful_timeout_s,
        "memory_limit_mb": None if math.isnan(limit) else round(limit / (1 << 20)),
        "memory_estimate_peak_mb": round(sized.peak_mb),
    }
    if warning := memory_warning(limit, sized):
        log.warning(warning, extra=fields)
    if drain_s > s.graceful_timeout_s:
        log.warning(
            "admitted work may outlast the drain timeout: raise EMBEDDER_GRACEFUL_TIMEOUT_S or "
            "lower EMBEDDER_MAX_QUEUED_TOKENS (docs/scheduling.md, Shutdown)",
            extra=fields,
        )
    else:
        log.info("capacity", extra=fields)
