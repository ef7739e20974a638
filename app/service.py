"""The embedding service shared by the HTTP routes and the MCP tools.

Owns the model, the inference thread and the batcher; enforces the input limits;
tracks readiness (loaded AND warmed up) for /ready.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Sequence
from statistics import median
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from app.admission import Admission, Ticket
from app.batching import Batcher, BatcherClosed
from app.config import Settings
from app.cpus import cpu_budget
from app.errors import InputTooLarge, InvalidInput, ModelNotFound, NotReady
from app.metrics import Metrics
from app.model import EmbeddingModel, Tokenized
from app.scheduler import Policy

log = logging.getLogger(__name__)

#: Above this many characters in one request, tokenize off the event loop.
INLINE_TOKENIZE_CHARS = 4096


@dataclass(slots=True)
class Embedded:
    vectors: np.ndarray  # [n, dim] float32
    tokens: int  # tokens fed to the model, special tokens included


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class EmbeddingService:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.model = EmbeddingModel(settings)
        self.info = self.model.info
        self.status = "starting"
        self.reason: str | None = "model not loaded yet"
        self._executor: ThreadPoolExecutor | None = None
        self.batcher: Batcher | None = None
        self._model_ids = {self.info.repo.lower(), self.info.name.lower()}
        check_capacity(settings, self.info.max_seq_length)
        self.admission = Admission(
            max_texts=settings.max_queued_texts,
            max_tokens=settings.max_queued_tokens,
            drain_seconds=self._drain_seconds,
            on_reject=metrics.rejected.inc,
        )
        metrics.watch_queue(self)

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.status == "ready"

    async def start(self) -> None:
        """Load the model and run one warm-up inference on the inference thread."""
        loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=self.settings.call_workers, thread_name_prefix="ort")
        self.status, self.reason = "loading", "model loading"
        started = time.perf_counter()
        try:
            await loop.run_in_executor(self._executor, self.model.load)
            self.reason = "warm-up inference running"
            await loop.run_in_executor(self._executor, self.model.warm_up)
            rate, overhead = await self._calibrate()
        except Exception as exc:
            self.status, self.reason = "failed", f"model failed to load: {exc}"
            log.exception("model load failed", extra={"model_dir": str(self.settings.model_dir)})
            return
        policy = Policy(
            max_texts=self.settings.max_batch,
            max_tokens=self.settings.max_batch_tokens,
            slack_s_per_token=self.settings.slack_ms_per_token / 1000,
            overhead_tokens=overhead,
        )
        self.batcher = Batcher(
            self.model.run,
            self._executor,
            policy,
            max_wait_s=self.settings.max_wait_ms / 1000,
            observe=self.metrics.observe_batch,
            workers=self.settings.call_workers,
        )
        self.batcher.start()
        # Everything loaded so far lives as long as the process: keep it out of the cyclic GC's
        # scans (they took ~25 % of the event loop's time under load; bench.mixed, README).
        gc.collect()
        gc.freeze()
        self.status, self.reason = "ready", None
        self.metrics.ready.set(1)
        self._log_capacity(rate, overhead)
        log.info(
            "ready",
            extra={
                "model": self.info.repo,
                "revision": self.info.revision,
                "variant": self.info.variant,
                "load_seconds": round(time.perf_counter() - started, 3),
            },
        )

    def begin_shutdown(self) -> None:
        """SIGTERM arrived: /ready says 503 so load balancers stop routing here; serving goes on."""
        if self.status == "ready":
            self.status, self.reason = "draining", "shutting down: stop routing here; in-flight work completes"
            self.metrics.ready.set(0)

    async def stop(self) -> None:
        self.status, self.reason = "stopping", "service is shutting down"
        self.metrics.ready.set(0)
        if self.batcher is not None:
            await self.batcher.stop()
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True)
            self._executor = None

    def ready_body(self) -> dict:
        return {
            "status": self.status,
            "ready": self.ready,
            "reason": self.reason,
            "model": self.info.repo,
            "revision": self.info.revision,
            "variant": self.info.variant,
            "dimensions": self.model.dimensions,
            "max_seq_length": self.info.max_seq_length,
        }

    # -- checks -----------------------------------------------------------------------------
    def resolve_model(self, requested: str) -> str:
        if requested.strip().lower() not in self._model_ids:
            raise ModelNotFound(
                f"The model {requested!r} is not served here. This service serves "
                f"{self.info.repo!r} (also accepted: {self.info.name!r}).",
                param="model",
            )
        return self.info.repo

    def check_limits(self, texts: Sequence[str], field: str) -> None:
        s = self.settings
        if len(texts) > s.max_inputs:
            raise InputTooLarge(
                f"{field} has {len(texts)} texts; at most {s.max_inputs} are allowed per request "
                f"(setting EMBEDDER_MAX_INPUTS). Split the request.",
                param=field,
            )
        for i, text in enumerate(texts):
            if len(text) > s.max_text_chars:
                raise InputTooLarge(
                    f"{field}[{i}] has {len(text)} characters; at most {s.max_text_chars} are "
                    f"allowed per text (setting EMBEDDER_MAX_TEXT_CHARS). Shorten or split it.",
                    param=f"{field}[{i}]",
                )

    async def _calibrate(self) -> tuple[float, float]:
        """Measure the cost model the scheduler and admission use, on this machine and model.

        * Rate: ``workers`` full calls at once (max-length texts up to the call budget), which
          also grows ORT's arena to its peak now rather than under load. The median call time
          gives padded tokens per second of one call when every worker is busy (a little low:
          the arena's first growth is in it), for drain estimates (x workers).
        * Call overhead (unless EMBEDDER_CALL_OVERHEAD_TOKENS sets it): one call of one short
          text against one of as many such texts as a call takes; the difference gives the
          cost per token, and the one-text call's time beyond its tokens is the fixed cost of
          a call, in tokens. Medians of a few runs: start-up is noisy.
        """
        s, limit, workers = self.settings, self.info.max_seq_length, self.settings.call_workers
        loop = asyncio.get_running_loop()

        def timed(batch: list[list[int]]) -> asyncio.Future[float]:
            return loop.run_in_executor(self._executor, self._time, batch)

        ids = self.model.tokenize(["calibration " * limit]).ids[0]
        full = [ids] * max(1, min(s.max_batch, s.max_batch_tokens // len(ids)))
        times = await asyncio.gather(*(timed(full) for _ in range(workers)))
        rate = len(full) * len(ids) / median(times)
        self.metrics.seed_rate(rate)
        overhead = s.call_overhead_tokens
        if overhead is None:
            short = self.model.tokenize(["calibration " * 30]).ids[0][: min(32, limit)]
            many = [short] * max(2, min(s.max_batch, s.max_batch_tokens // len(short), 16))
            one = median([await timed([short]) for _ in range(3)])
            all_ = median([await timed(many) for _ in range(2)])
            per_token = max(all_ - one, 1e-9) / ((len(many) - 1) * len(short))
            overhead = max(0.0, one / per_token - len(short))
        return rate, overhead

    def _time(self, ids: list[list[int]]) -> float:
        started = time.perf_counter()
        self.model.run(ids)
        return max(time.perf_counter() - started, 1e-6)

    def _log_capacity(self, rate: float, overhead: float) -> None:
        s = self.settings
        drain = self._drain_seconds(s.max_queued_tokens)
        cpus = cpu_budget()
        fields = {
            "cpus": cpus.cpus,
            "cpus_from": cpus.source,
            "cpu_quota": cpus.quota,
            "affinity_cpus": cpus.affinity,
            "workers": s.call_workers,
            "intra_op_threads": s.intra_op_threads,
            "tokens_per_second_per_call": round(rate),
            "call_overhead_tokens": round(overhead, 1),
            "max_queued_tokens": s.max_queued_tokens,
            "drain_estimate_s": round(drain, 1),
            "graceful_timeout_s": s.graceful_timeout_s,
        }
        if drain > s.graceful_timeout_s:
            log.warning(
                "admitted work may outlast the drain timeout: raise EMBEDDER_GRACEFUL_TIMEOUT_S or "
                "lower EMBEDDER_MAX_QUEUED_TOKENS (README, Sizing)",
                extra=fields,
            )
        else:
            log.info("capacity", extra=fields)

    def _drain_seconds(self, tokens: int) -> float:
        """Seconds the workers need for ``tokens`` padded tokens, at the rate measured so far."""
        rate = self.metrics.tokens_per_second()
        return tokens / (rate * self.settings.call_workers) if rate else 1.0

    def _admit(self, texts: Sequence[str]) -> Ticket:
        """Reserve admission for texts: tokens bounded by characters + 2 until tokenized."""
        limit = self.info.max_seq_length
        return self.admission.admit(len(texts), sum(min(limit, len(t) + 2) for t in texts))

    def _require_ready(self) -> Batcher:
        if self.status not in ("ready", "draining") or self.batcher is None:
            raise NotReady(f"Model is not ready yet ({self.reason}); retry shortly, see GET /ready.")
        return self.batcher

    # -- operations -------------------------------------------------------------------------
    async def tokenize(
        self, texts: Sequence[str], *, truncate: bool, field: str, single: bool = False
    ) -> Tokenized:
        if sum(len(t) for t in texts) > INLINE_TOKENIZE_CHARS:
            tok = await asyncio.to_thread(self.model.tokenize, texts)
        else:
            tok = self.model.tokenize(texts)
        if tok.over_limit:
            limit = self.info.max_seq_length
            if not truncate:
                i = tok.over_limit[0]
                where = field if single else f"{field}[{i}]"
                raise InputTooLarge(
                    f"{where} is {tok.full_lengths[i]} tokens long; the model takes at most "
                    f"{limit} tokens (max_seq_length {limit}, special tokens included). Shorten "
                    f'it, or send "truncate": true to embed its first {limit} tokens.',
                    param=where,
                )
            self.metrics.truncated.inc(len(tok.over_limit))
        return tok

    async def _run(self, ids: list) -> np.ndarray:
        batcher = self._require_ready()
        try:
            return await batcher.submit(ids)
        except BatcherClosed as exc:
            raise NotReady(str(exc)) from exc

    async def embed(
        self,
        texts: Sequence[str],
        *,
        normalize: bool = True,
        truncate: bool = True,
        field: str = "inputs",
        single: bool = False,
    ) -> Embedded:
        """Embed texts (limits enforced, batched with concurrent requests)."""
        self.check_limits(texts, field)
        self._require_ready()
        with self._admit(texts) as ticket:
            tok = await self.tokenize(texts, truncate=truncate, field=field, single=single)
            ticket.resize(tok.total_tokens)
            vectors = await self._run(tok.ids)
        self.metrics.texts.inc(len(texts))
        self.metrics.tokens.inc(tok.total_tokens)
        return Embedded(normalize_rows(vectors) if normalize else vectors, tok.total_tokens)

    async def similarity(self, source: str, targets: Sequence[str], *, truncate: bool = True) -> list[float]:
        """Cosine similarity of source to each target, in target order."""
        if not targets:
            raise InvalidInput("targets must contain at least one text", param="targets")
        self.check_limits(targets, "targets")
        if len(source) > self.settings.max_text_chars:
            raise InputTooLarge(
                f"source has {len(source)} characters; at most {self.settings.max_text_chars} are "
                f"allowed per text (setting EMBEDDER_MAX_TEXT_CHARS).",
                param="source",
            )
        self._require_ready()
        with self._admit([source, *targets]) as ticket:
            src = await self.tokenize([source], truncate=truncate, field="source", single=True)
            tgt = await self.tokenize(targets, truncate=truncate, field="targets")
            ticket.resize(src.total_tokens + tgt.total_tokens)
            vectors = normalize_rows(await self._run(src.ids + tgt.ids))
        self.metrics.texts.inc(1 + len(targets))
        self.metrics.tokens.inc(src.total_tokens + tgt.total_tokens)
        scores = vectors[1:] @ vectors[0]
        return [float(x) for x in np.clip(scores, -1.0, 1.0)]


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
