"""The embedding cache against a real Redis server: EMBEDDER_TEST_REDIS_URL and _PASSWORD (the pipeline binds
redis:7), else a ``redis-server`` started here; skipped, saying why, when neither exists. Stopping and restarting
Redis needs a redis-server of our own (the pipeline's two-replica check does it with the service)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import time

import numpy as np
import pytest
import redis
from svc_support import make_settings, running_app

from app.main import create_app

PASSWORD = os.environ.get("EMBEDDER_TEST_REDIS_PASSWORD", "cache-test-password")
#: With a healthy Redis, a call must not time out because the machine is busy (the checks run in parallel):
#: the 50 ms default is for production; timeouts have their own tests below.
HEALTHY = {"cache_timeout_ms": 2000}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server of our own (so a test may stop and restart it), with a password."""

    def __init__(self, tmp_path) -> None:
        self.port, self.dir = _free_port(), tmp_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", PASSWORD,
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url, password=PASSWORD)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def redis_server(tmp_path):
    if not shutil.which("redis-server"):
        pytest.skip("needs redis-server on PATH (apt-get install redis-server) for stop/restart tests")
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(tmp_path):
    """A Redis to use (not to stop): the pipeline's service, or one started here."""
    if url := os.environ.get("EMBEDDER_TEST_REDIS_URL"):
        yield url
        return
    if not shutil.which("redis-server"):
        pytest.skip("needs EMBEDDER_TEST_REDIS_URL or redis-server on PATH")
    server = RedisServer(tmp_path).start()
    yield server.url
    server.stop()


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


TEXTS = ["The cat sits on the mat.", "Quarterly revenue grew by nine percent.", "¿Dónde está la biblioteca?"]


async def test_second_request_is_a_hit_with_the_same_vectors(model_dir, redis_url):
    texts = [f"{t} ({secrets.token_hex(4)})" for t in TEXTS]  # new to a shared Redis
    settings = make_settings(model_dir, cache_url=redis_url, cache_password=PASSWORD, **HEALTHY)
    async with running_app(create_app(settings)) as c:
        first = await c.post("/embed", json={"inputs": texts})
        await asyncio.sleep(0.2)  # the write is in the background
        raw = await c.post("/embed", json={"inputs": texts, "normalize": False})
        second = await c.post("/embed", json={"inputs": texts})
        oai = await c.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": texts[0], "encoding_format": "float"})
        text = (await c.get("/metrics")).text
        ready = (await c.get("/ready")).json()
    np.testing.assert_array_equal(second.json()["embeddings"], first.json()["embeddings"])
    unit = np.asarray(raw.json()["embeddings"])
    np.testing.assert_allclose(unit / np.linalg.norm(unit, axis=1, keepdims=True), first.json()["embeddings"], atol=1e-6)
    assert oai.json()["usage"]["prompt_tokens"] > 2
    assert metric(text, "embedder_cache_misses_total") == 3
    assert metric(text, "embedder_cache_hits_total") == 3 + 3 + 1
    assert ready["cache"] == "ok"
    assert PASSWORD not in text and PASSWORD not in str(ready)


async def test_keys_name_the_model_and_texts_come_back_in_order(model_dir, redis_url):
    settings = make_settings(model_dir, cache_url=redis_url, cache_password=PASSWORD, **HEALTHY)
    app = create_app(settings)
    async with running_app(app) as c:
        await c.post("/embed", json={"inputs": TEXTS[:1]})
        await asyncio.sleep(0.2)
        mixed = await c.post("/embed", json={"inputs": [TEXTS[2], TEXTS[0], TEXTS[1]]})  # hit in the middle
        direct = await c.post("/embed", json={"inputs": [TEXTS[2], TEXTS[1]]})
        key = app.state.service.cache.key(TEXTS[0])
    got = mixed.json()["embeddings"]
    np.testing.assert_allclose([got[0], got[2]], direct.json()["embeddings"], atol=1e-6)
    lock_sha = app.state.service.info.files["onnx/model.onnx"]["sha256"]
    assert key.startswith(b"embedder:") and lock_sha.encode() not in key  # hashed with tokenizer + max_seq
    other = create_app(make_settings(model_dir, engine="onnxruntime", cache_url=redis_url))
    assert other.state.service.cache.key(TEXTS[0]) != key  # another engine and graph, another key


async def test_truncate_false_still_refuses_a_cached_long_text(model_dir, redis_url):
    long = "word " * 400
    async with running_app(create_app(make_settings(model_dir, cache_url=redis_url, cache_password=PASSWORD, **HEALTHY))) as c:
        assert (await c.post("/embed", json={"inputs": [long]})).status_code == 200
        await asyncio.sleep(0.2)
        refused = await c.post("/embed", json={"inputs": [long], "truncate": False})
    assert refused.status_code == 413 and "256" in refused.json()["detail"]


async def test_redis_down_serves_without_it_then_recovers(model_dir, redis_server):
    settings = make_settings(
        model_dir, cache_url=redis_server.url, cache_password=PASSWORD, cache_breaker_s=0.5, cache_timeout_ms=200
    )
    async with running_app(create_app(settings)) as c:
        assert (await c.post("/embed", json={"inputs": ["before the outage"]})).status_code == 200
        redis_server.stop()
        during = [await c.post("/embed", json={"inputs": [f"outage {i}", "before the outage"]}) for i in range(5)]
        ready = await c.get("/ready")
        redis_server.start()
        await asyncio.sleep(0.6)  # the breaker's half-open moment
        after = await c.post("/embed", json={"inputs": ["after the outage"]})
        await asyncio.sleep(0.2)
        again = await c.post("/embed", json={"inputs": ["after the outage"]})
        text = (await c.get("/metrics")).text
        final = (await c.get("/ready")).json()
    assert [r.status_code for r in during] == [200] * 5
    assert ready.status_code == 200 and ready.json()["cache"] == "degraded"
    assert after.status_code == 200 and again.status_code == 200
    assert metric(text, 'embedder_cache_errors_total{operation="read"}') >= 1
    assert metric(text, "embedder_cache_skipped_total") >= 1  # the breaker skipped Redis
    assert metric(text, "embedder_cache_hits_total") >= 1 and final["cache"] == "ok"  # written and hit again


async def test_wrong_password_is_a_degraded_cache_not_an_error(model_dir, redis_url):
    settings = make_settings(model_dir, cache_url=redis_url, cache_password="wrong")
    async with running_app(create_app(settings)) as c:
        r = await c.post("/embed", json={"inputs": ["still served"]})
        ready = (await c.get("/ready")).json()
    assert r.status_code == 200 and ready["cache"] == "degraded"


async def test_prompted_and_unprompted_vectors_of_a_text_never_mix(model_dir, redis_url, tmp_path):
    from model_copies import model_copy

    texts = [f"{t} ({secrets.token_hex(4)})" for t in TEXTS[:2]]
    path = model_copy(model_dir, tmp_path, prompts={"query": "query: "})
    async with running_app(create_app(make_settings(path, cache_url=redis_url, cache_password=PASSWORD, **HEALTHY))) as c:
        prompted = await c.post("/embed", json={"inputs": texts, "prompt_name": "query"})
        await asyncio.sleep(0.2)
        plain = await c.post("/embed", json={"inputs": texts})  # same texts, no prompt: misses
        cached = await c.post("/embed", json={"inputs": texts, "prompt_name": "query"})
        oai = await c.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": texts, "prompt_name": "query"})
        spelled = await c.post(
            "/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": ["query: " + t for t in texts]}
        )
        text = (await c.get("/metrics")).text
    np.testing.assert_array_equal(cached.json()["embeddings"], prompted.json()["embeddings"])
    assert not np.allclose(plain.json()["embeddings"], prompted.json()["embeddings"], atol=1e-3)
    assert oai.json()["usage"] == spelled.json()["usage"]  # cached token counts include the prompt
    assert metric(text, "embedder_cache_misses_total") == 2 + 2 + 2  # prompted, plain, spelled out
    assert metric(text, "embedder_cache_hits_total") == 2 + 2
