"""The embedding service shared by the HTTP routes and the MCP tools.

Owns the model, the inference thread and the batcher; enforces the input limits;
tracks readiness (loaded AND warmed up) for /ready.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from app import startcheck, startup
from app.admission import Admission, Ticket
from app.batching import Batcher, BatcherClosed
from app.capacity import check_capacity, log_capacity
from app.config import Settings, for_model
from app.errors import InputTooLarge, InvalidInput, ModelNotFound, NotReady
from app.metrics import Metrics
from app.model import EmbeddingModel, Tokenized
from app.prompts import prompt_text
from app.scheduler import Policy

if TYPE_CHECKING:
    from app.cache import EmbeddingCache

log = logging.getLogger(__name__)

#: Above this many characters in one request, tokenize off the event loop.
INLINE_TOKENIZE_CHARS = 4096


@dataclass(slots=True)
class Embedded:
    vectors: np.ndarray  # [n, dim] float32
    tokens: int  # tokens fed to the model, special tokens and prompt included


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class EmbeddingService:
    def __init__(self, settings: Settings, metrics: Metrics, started: startup.Startup | None = None) -> None:
        """``started``: the model's start-up job when ``python -m app`` began it already (app.startup)."""
        self.metrics = metrics
        self._startup = started
        self.model = started.model if started is not None else EmbeddingModel(settings)
        self.info = self.model.info
        self.settings = settings = for_model(settings, self.info.max_seq_length)
        self.status = "starting"
        self._reason: str | None = "model not loaded yet"
        self._refining: asyncio.Task | None = None  # the call overhead, measured after /ready
        self.accuracy: dict | None = None  # the start check's figure (app.startcheck)
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
        self.cache = self._make_cache()

    def _make_cache(self) -> EmbeddingCache | None:
        s = self.settings
        url = s.cache_url.get_secret_value()
        if not url:
            return None
        from app.cache import EmbeddingCache  # redis is imported only when a cache is configured

        return EmbeddingCache(
            url,
            password=s.redis_password,
            model=self._model_key("f32"),
            ttl_s=s.cache_ttl_s,
            timeout_s=s.cache_timeout_ms / 1000,
            breaker_s=s.cache_breaker_s,
            metrics=self.metrics,
        )

    def _model_key(self, precision: str) -> str:
        from app.cache import model_key

        s, files = self.settings, self.info.files
        graph = "+".join(files[name]["sha256"] for name in s.graph_files)
        return model_key(graph, files["tokenizer.json"]["sha256"], self.info.max_seq_length, s.engine, precision)

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.status == "ready"

    @property
    def reason(self) -> str | None:
        """Why /ready is not 200 (None when ready)."""
        if self.status == "loading" and self._startup is not None and not self._startup.result.done():
            return self._startup.phase
        return self._reason

    async def start(self, gates: Sequence[tuple[str, Awaitable[object]]] = ()) -> None:
        """Finish the model's start-up job (app.startup; begun here unless ``python -m app`` began it), then
        wait for each gate (what else /ready promises, e.g. the MCP server; its reason while it is awaited)."""
        self.status, self._reason = "loading", "model loading"
        started = time.perf_counter()
        try:
            if self._startup is None:
                self._startup = startup.begin(self.settings, self.model)
            self._executor = self._startup.executor
            prepared: startup.Prepared = await asyncio.wrap_future(self._startup.result)
            self.accuracy = prepared.accuracy
            if self.cache is not None:  # the precision is final: key the cache by it
                self.cache.rekey(self._model_key(self.accuracy["precision"]))
            cost = prepared.cost
            self.metrics.seed_rate(cost.tokens_per_second)
            for reason, gate in gates:
                self._reason = reason
                await gate
        except Exception as exc:
            failed = "accuracy check failed" if isinstance(exc, startcheck.StartCheckFailed) else (
                "model failed to load" if self._reason == "model loading" else "start-up failed")
            self.status, self._reason = "failed", f"{failed}: {exc}"
            log.exception("start-up failed", extra={"model_dir": str(self.settings.model_dir)})
            gc.enable()
            return
        policy = Policy(
            max_texts=self.settings.max_batch,
            max_tokens=self.settings.max_batch_tokens,
            slack_s_per_token=self.settings.slack_ms_per_token / 1000,
            overhead_tokens=cost.overhead_tokens,
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
        if self.settings.call_overhead_tokens is None:  # the prior until measured (app.capacity.cost_model)
            self._refining = asyncio.create_task(
                startup.measure_call_overhead(self.model, self.settings, self._executor, policy), name="call-overhead")
        # Everything loaded so far lives as long as the process: keep it out of the cyclic GC's
        # scans (they took ~25 % of the event loop's time under load; bench.mixed, docs/benchmarks.md).
        # ``python -m app`` starts with the collector off (its imports make objects, not garbage): on again here.
        # No full pass first: it took ~0.1 s of every start to free ~1,000 objects (~100 kB), frozen instead.
        gc.freeze()
        gc.enable()
        self.status, self._reason = "ready", None
        self.metrics.ready.set(1)
        identity = self.engine_identity() or {}
        self.metrics.engine_info.info({k: str(v) for k, v in identity.items()})
        log_capacity(self.settings, cost, self._drain_seconds(self.settings.max_queued_tokens), identity)
        log.info(
            "ready",
            extra={
                "model": self.info.repo,
                "revision": self.info.revision,
                "load_seconds": round(time.perf_counter() - started, 3),
            },
        )

    def begin_shutdown(self) -> None:
        """SIGTERM arrived: /ready says 503 so load balancers stop routing here; serving goes on."""
        if self.status == "ready":
            self.status, self._reason = "draining", "shutting down: stop routing here; in-flight work completes"
            self.metrics.ready.set(0)

    async def stop(self) -> None:
        self.status, self._reason = "stopping", "service is shutting down"
        self.metrics.ready.set(0)
        if self._refining is not None:
            self._refining.cancel()
        if self.batcher is not None:
            await self.batcher.stop()
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True)
            self._executor = None
        if self.cache is not None:
            await self.cache.close()

    def engine_identity(self) -> dict | None:
        """Which engine serves, at which precision, on which CPU capabilities (/v1/models, /metrics, logs)."""
        if not self.model.loaded:
            return None
        described = self.model.engine.describe()
        return {k: described[k] for k in ("engine", "version", "precision", "cpu_capabilities") if k in described}

    def ready_body(self) -> dict:
        return {
            "status": self.status,
            "ready": self.ready,
            "reason": self.reason,
            "model": self.info.repo,
            "revision": self.info.revision,
            **self.info.describe(),
            "cache": "off" if self.cache is None else "degraded" if self.cache.degraded else "ok",
            "engine": self.model.engine.describe() if self.model.loaded else None,
            "accuracy": self.accuracy,
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

    def _drain_seconds(self, tokens: int) -> float:
        """Seconds the engine needs for ``tokens`` padded tokens, at the rate of one call measured so far, with
        as many calls at once as it runs."""
        rate = self.metrics.tokens_per_second()
        at_once = self.model.engine.calls_at_once if self.model.loaded else self.settings.call_workers
        return tokens / (rate * at_once) if rate else 1.0

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
        self, texts: Sequence[str], *, truncate: bool, field: str, single: bool = False, prompt: str = ""
    ) -> Tokenized:
        """Tokenize prompt + text for each text; 413 for an over-long text unless truncate."""
        if prompt:
            texts = [prompt + t for t in texts]
        if sum(len(t) for t in texts) > INLINE_TOKENIZE_CHARS:
            tok = await asyncio.to_thread(self.model.tokenize, texts)
        else:
            tok = self.model.tokenize(texts)
        if tok.over_limit:
            limit = self.info.max_seq_length
            if not truncate:
                i = tok.over_limit[0]
                where = field if single else f"{field}[{i}]"
                with_prompt = f" with its prompt {prompt!r}" if prompt else ""
                raise InputTooLarge(
                    f"{where} is {tok.full_lengths[i]} tokens long{with_prompt}; the model takes at most "
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
        normalize: bool | None = None,
        truncate: bool = True,
        field: str = "inputs",
        single: bool = False,
        prompt_name: str | None = None,
    ) -> Embedded:
        """Embed texts (limits enforced, cached texts looked up, the rest batched with concurrent requests).

        ``prompt_name`` (else the model's default prompt) prepends that prompt to every text;
        ``normalize`` None means what the model does (embedding.json ``normalize``)."""
        self.check_limits(texts, field)
        prompt = prompt_text(self.info.meta, self.info.repo, prompt_name)
        self._require_ready()
        dims, cache = self.model.dimensions, self.cache
        found = await cache.get_many(texts, dims, prompt) if cache is not None else [None] * len(texts)
        limit = self.info.max_seq_length
        for i, hit in enumerate(found):
            if hit is not None and hit[1] > limit and not truncate:
                found = [None] * len(texts)  # the tokenizer names the text and the limit (413)
                break
        missing = [i for i, hit in enumerate(found) if hit is None]
        vectors = np.empty((len(texts), dims), dtype=np.float32)
        tokens = 0
        for i, hit in enumerate(found):
            if hit is not None:
                vectors[i] = hit[0]
                tokens += min(hit[1], limit)
        if missing:
            todo = [texts[i] for i in missing]
            with self._admit([prompt + t for t in todo]) as ticket:
                tok = await self.tokenize(todo, truncate=truncate, field=field, single=single, prompt=prompt)
                ticket.resize(tok.total_tokens)
                computed = await self._run(tok.ids)
            vectors[missing] = computed
            tokens += tok.total_tokens
            if cache is not None:
                full = [tok.full_lengths.get(k, n) for k, n in enumerate(tok.lengths)]
                cache.put_many(list(zip(todo, computed, full, strict=True)), prompt)
        self.metrics.texts.inc(len(texts))
        self.metrics.tokens.inc(tokens)
        normalize = self.info.meta.normalize if normalize is None else normalize
        return Embedded(normalize_rows(vectors) if normalize else vectors, tokens)

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
        prompt = prompt_text(self.info.meta, self.info.repo, None)  # the default prompt, as sentence-transformers
        self._require_ready()
        with self._admit([prompt + t for t in (source, *targets)]) as ticket:
            src = await self.tokenize([source], truncate=truncate, field="source", single=True, prompt=prompt)
            tgt = await self.tokenize(targets, truncate=truncate, field="targets", prompt=prompt)
            ticket.resize(src.total_tokens + tgt.total_tokens)
            vectors = normalize_rows(await self._run(src.ids + tgt.ids))
        self.metrics.texts.inc(1 + len(targets))
        self.metrics.tokens.inc(src.total_tokens + tgt.total_tokens)
        scores = vectors[1:] @ vectors[0]
        return [float(x) for x in np.clip(scores, -1.0, 1.0)]

