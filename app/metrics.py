"""Prometheus metrics (prometheus-client), one registry per app instance."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)

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
            "embedder_batch_size", "Texts per ONNX Runtime call.", buckets=BATCH_BUCKETS, registry=r
        )
        self.batch_requests = Histogram(
            "embedder_batch_requests",
            "Requests sharing one ONNX Runtime call.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "embedder_inference_seconds",
            "Seconds per ONNX Runtime call.",
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
        self.ready = Gauge("embedder_ready", "1 when the model is loaded and warmed up.", registry=r)

    def observe_batch(self, texts: int, requests: int, seconds: float, waited: float) -> None:
        self.batch_size.observe(texts)
        self.batch_requests.observe(requests)
        self.inference.observe(seconds)
        self.queue_wait.observe(waited)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
