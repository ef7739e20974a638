"""Optional embedding cache shared by replicas, in Redis (docs/cache-and-keys.md).

* Key: ``embedder:<model key>:<sha256 of the text>``, or for a text embedded with a prompt
  (app.prompts) ``embedder:<model key>:p<sha256 of the prompt, 16 bytes>:<sha256 of the text>``,
  so prompted and unprompted vectors of a text never mix. The model key hashes what decides a
  vector: the served ONNX file's and the tokenizer's sha256 from model.lock.json and
  max_seq_length (the truncation), so a re-export, another engine or another model never reads
  stale vectors.
* Value: the text's token count before truncation (uint32: usage figures, and the 413 that
  ``truncate: false`` owes a text over the limit) and the float32 vector *before* normalization,
  little-endian; requests that normalize and requests that do not share entries. With a prompt,
  the token count is that of prompt + text (what the model saw).
* One ``MGET`` per request for its lookups; misses go through the batcher; their writes are one
  pipelined ``SET ... EX`` sent in the background, so they never delay the response.
* Redis down, slow or refusing: every call is bounded by ``timeout_s`` (no retries), a failure
  opens a breaker that skips Redis for ``breaker_s``, and the request is served without the
  cache. Never a 5xx because of the cache; /ready stays 200 and says ``"cache": "degraded"``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import struct
import time
from collections.abc import Callable, Sequence

import numpy as np
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from app.metrics import Metrics

log = logging.getLogger(__name__)

_TOKENS = struct.Struct("<I")


def model_key(graph_sha256: str, tokenizer_sha256: str, max_seq_length: int, engine: str = "onnxruntime",
              precision: str = "f32") -> str:
    """What a cached vector was computed from: the graph's files (their sha256s joined by "+"), the tokenizer,
    the engine and the precision it ran at. Engines and precisions are keyed apart, so a fleet of mixed CPUs
    never mixes bf16 and f32 vectors; ONNX Runtime f32 keys are the ones every release before engines had
    (their caches stay warm)."""
    ident = f"{graph_sha256}:{tokenizer_sha256}:{max_seq_length}"
    if (engine, precision) != ("onnxruntime", "f32"):
        ident += f":{engine}:{precision}"
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def encode(vector: np.ndarray, tokens: int) -> bytes:
    return _TOKENS.pack(tokens) + vector.astype("<f4", copy=False).tobytes()


def decode(raw: bytes, dims: int) -> tuple[np.ndarray, int] | None:
    if len(raw) != _TOKENS.size + 4 * dims:
        return None  # not ours (or another shape): a miss, never a wrong vector
    (tokens,) = _TOKENS.unpack_from(raw)
    return np.frombuffer(raw, dtype="<f4", offset=_TOKENS.size).astype(np.float32), tokens


class EmbeddingCache:
    def __init__(
        self,
        url: str,
        *,
        password: str | None,
        model: str,
        ttl_s: int,
        timeout_s: float,
        breaker_s: float,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = Redis.from_url(
            url,
            password=password or None,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # a slow Redis costs one timeout, not several
            health_check_interval=0,
        )
        self._prefix = f"embedder:{model}:".encode()
        self.ttl_s, self.timeout_s, self.breaker_s = ttl_s, timeout_s, breaker_s
        self._metrics, self._clock = metrics, clock
        self._open_until = 0.0
        self._writes: set[asyncio.Task] = set()
        metrics.cache_up.set(1)

    def rekey(self, model: str) -> None:
        """The model key, once the engine has chosen its precision (at load, before any request)."""
        self._prefix = f"embedder:{model}:".encode()

    @property
    def degraded(self) -> bool:
        return self._clock() < self._open_until

    def key(self, text: str, prompt: str = "") -> bytes:
        """The key of text embedded with prompt ("" = none); never equal to the key of another pair."""
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        if not prompt:
            return self._prefix + digest
        tag = hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).digest()[:16]
        return self._prefix + b"p" + tag + b":" + digest

    async def get_many(
        self, texts: Sequence[str], dims: int, prompt: str = ""
    ) -> list[tuple[np.ndarray, int] | None]:
        """Cached (unnormalized vector, tokens) per text, None for a miss; all None when Redis fails."""
        if self.degraded:
            self._metrics.cache_skipped.inc(len(texts))
            return [None] * len(texts)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                raws = await self._redis.mget([self.key(t, prompt) for t in texts])
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("read", exc)
            return [None] * len(texts)
        finally:
            self._metrics.cache_seconds.labels("read").observe(time.perf_counter() - started)
        self._metrics.cache_up.set(1)
        found = [decode(raw, dims) if raw is not None else None for raw in raws]
        hits = sum(f is not None for f in found)
        self._metrics.cache_hits.inc(hits)
        self._metrics.cache_misses.inc(len(found) - hits)
        return found

    def put_many(self, entries: Sequence[tuple[str, np.ndarray, int]], prompt: str = "") -> None:
        """Store (text, vector, tokens) entries of texts embedded with prompt, in the background."""
        if not entries or self.degraded:
            return
        task = asyncio.get_running_loop().create_task(self._put(entries, prompt))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _put(self, entries: Sequence[tuple[str, np.ndarray, int]], prompt: str) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for text, vector, tokens in entries:
                        pipe.set(self.key(text, prompt), encode(vector, tokens), ex=self.ttl_s or None)
                    await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed("write", exc)
        finally:
            self._metrics.cache_seconds.labels("write").observe(time.perf_counter() - started)

    def _failed(self, op: str, exc: BaseException) -> None:
        self._metrics.cache_errors.labels(op).inc()
        was_open = self.degraded
        self._open_until = self._clock() + self.breaker_s
        self._metrics.cache_up.set(0)
        if not was_open:  # once per outage, not once per request; never the URL (it may hold a password)
            log.warning(
                "cache unavailable: serving without it",
                extra={"operation": op, "error": type(exc).__name__, "retry_in_s": self.breaker_s},
            )

    async def close(self) -> None:
        if self._writes:
            await asyncio.wait(self._writes, timeout=self.timeout_s * 2)
        await self._redis.aclose()
