"""Prometheus metrics (prometheus-client), one registry per app instance."""

from __future__ import annotations

import functools
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)

from app import memory

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256)
TOKEN_BUCKETS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        process_collector.ProcessCollector(registry=r)
        platform_collector.PlatformCollector(registry=r)
        gc_collector.GCCollector(registry=r)
        self.requests = Counter(
            "embedder_http_requests",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "embedder_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge("embedder_http_requests_in_flight", "HTTP requests being served.", registry=r)
        self.batch_size = Histogram(
            "embedder_batch_size", "Texts per engine call.", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "embedder_batch_requests",
            "Requests sharing one engine call.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "embedder_inference_seconds",
            "Seconds per engine call.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "embedder_queue_wait_seconds",
            "Time the oldest request of a call waited for it.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.texts = Counter("embedder_texts", "Texts embedded.", registry=r)
        self.tokens = Counter("embedder_tokens", "Tokens fed to the model.", registry=r)
        self.truncated = Counter(
            "embedder_truncated_texts", "Texts cut to the model's token limit.", registry=r
        )
        self.batch_tokens = Histogram(
            "embedder_batch_padded_tokens",
            "Padded tokens (texts x longest) per engine call.",
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.rejected = Counter(
            "embedder_rejected_requests",
            "Requests refused by admission control (503 + Retry-After).",
            registry=r,
        )
        self.unauthorized = Counter(
            "embedder_unauthorized_requests", "Requests refused for a missing or wrong API key (401).", registry=r
        )
        self.cache_hits = Counter("embedder_cache_hits", "Texts found in the embedding cache.", registry=r)
        self.cache_misses = Counter("embedder_cache_misses", "Texts looked up and not found in the cache.", registry=r)
        self.cache_skipped = Counter(
            "embedder_cache_skipped", "Texts not looked up: the cache is degraded (breaker open).", registry=r
        )
        self.cache_errors = Counter(
            "embedder_cache_errors", "Cache calls that failed or timed out.", ["operation"], registry=r
        )
        self.cache_seconds = Histogram(
            "embedder_cache_seconds", "Seconds per cache call (one per request).", ["operation"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25), registry=r,
        )
        self.cache_up = Gauge("embedder_cache_up", "1 when the cache answers, 0 when degraded.", registry=r)
        self.ready = Gauge("embedder_ready", "1 when the model is loaded and warmed up.", registry=r)
        self.engine_info = Info(
            "embedder_engine", "The engine serving: name, version, precision, CPU capabilities used.", registry=r
        )
        for what in ("usage", "peak", "limit"):  # the container's, as the OOM killer counts (app.memory)
            Gauge(
                f"embedder_memory_{what}_bytes", f"Container memory {what} (cgroup), NaN when not known.", registry=r
            ).set_function(functools.partial(memory.read, what))
        self._rate: float | None = None  # padded tokens per second of the engine, moving average

    def watch_queue(self, service: object) -> None:
        """Gauges read from the service at scrape time: the scheduler queue and admitted work."""

        def batcher_value(name: str) -> Callable[[], float]:
            return lambda: float(getattr(getattr(service, "batcher", None), name, 0) or 0)

        admission = service.admission  # type: ignore[attr-defined]
        gauges = {
            "embedder_queue_texts": ("Texts waiting for an engine call.", batcher_value("queued_texts")),
            "embedder_queue_tokens": ("Tokens waiting for an engine call.", batcher_value("queued_tokens")),
            "embedder_running_padded_tokens": (
                "Padded tokens of the engine call running now.",
                batcher_value("in_flight_tokens"),
            ),
            "embedder_admitted_texts": ("Texts admitted and not yet answered.", lambda: admission.texts),
            "embedder_admitted_tokens": ("Tokens admitted and not yet answered.", lambda: admission.tokens),
        }
        for name, (doc, read) in gauges.items():
            Gauge(name, doc, registry=self.registry).set_function(read)

    def observe_batch(self, texts: int, requests: int, padded: int, seconds: float, waited: float) -> None:
        self.batch_size.observe(texts)
        self.batch_requests.observe(requests)
        self.batch_tokens.observe(padded)
        self.inference.observe(seconds)
        self.queue_wait.observe(waited)
        if seconds > 0:
            rate = padded / seconds
            self._rate = rate if self._rate is None else 0.8 * self._rate + 0.2 * rate

    def seed_rate(self, tokens_per_second: float) -> None:
        self._rate = tokens_per_second

    def tokens_per_second(self) -> float | None:
        return self._rate

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
