"""Two replicas of the built image sharing one Redis, with API keys (`dagger call fleet-check`). The tests run
in file order: both up; Redis made unreachable (tests/fleet/gate.py: FLEET_GATE is its control URL); Redis
reachable again. Environment: FLEET_A and FLEET_B (the replicas' base URLs), FLEET_KEY (an API key both
accept), FLEET_GATE. Without them every test is skipped."""

from __future__ import annotations

import os
import time

import httpx
import numpy as np
import pytest

A, B, KEY, GATE = (os.environ.get(k, "") for k in ("FLEET_A", "FLEET_B", "FLEET_KEY", "FLEET_GATE"))
pytestmark = pytest.mark.skipif(
    not (A and B and KEY and GATE), reason="needs FLEET_A, FLEET_B, FLEET_KEY, FLEET_GATE (dagger call fleet-check)"
)

AUTH = {"Authorization": f"Bearer {KEY}"}
TEXTS = ["A replica embeds this once.", "The other replica finds it in the cache."]
WRITES = 'embedder_cache_seconds_count{operation="write"}'
WRITE_ERRORS = 'embedder_cache_errors_total{operation="write"}'


def client(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers=AUTH, timeout=60)


def metric(c: httpx.Client, name: str) -> float:
    """A sample's value; ``name`` may carry labels, e.g. 'embedder_cache_seconds_count{operation="write"}'."""
    text = c.get("/metrics").text
    return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(name + " "))


def wait_for_write(c: httpx.Client, writes: float, failures: float) -> None:
    """The replica's background SET has completed (its write timing was observed) without a new error."""
    deadline = time.monotonic() + 10
    while metric(c, WRITES) <= writes:
        errors = metric(c, 'embedder_cache_errors_total{operation="read"}')
        assert time.monotonic() < deadline, f"the replica never wrote to the cache (read errors: {errors})"
        time.sleep(0.05)
    assert metric(c, WRITE_ERRORS) == failures, "the replica's cache write failed"


def embed(c: httpx.Client, texts: list[str]) -> np.ndarray:
    r = c.post("/embed", json={"inputs": texts})
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["embeddings"])


def embedded_on_a_then_hit_on_b(a: httpx.Client, b: httpx.Client, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A embeds the texts; once A's background write is done, B asks and must hit all of them. (Asking earlier,
    B may miss, compute the texts itself in another batch shape, which can differ in the last bit, and then
    hit its own entry.)"""
    writes, failures = metric(a, WRITES), metric(a, WRITE_ERRORS)
    first = embed(a, texts)
    wait_for_write(a, writes, failures)
    hits = metric(b, "embedder_cache_hits_total")
    second = embed(b, texts)
    assert metric(b, "embedder_cache_hits_total") == hits + len(texts), "B did not hit what A wrote"
    return first, second


def test_a_text_embedded_on_a_is_a_hit_on_b_with_the_same_vector():
    with client(A) as a, client(B) as b:
        assert a.get("/ready").json()["cache"] == b.get("/ready").json()["cache"] == "ok"
        first, second = embedded_on_a_then_hit_on_b(a, b, TEXTS)
    np.testing.assert_array_equal(first, second)


def test_without_a_key_401_with_it_200_and_probes_open():
    for url in (A, B):
        with httpx.Client(base_url=url, timeout=60) as c:
            assert c.post("/v1/embeddings", json={"model": "all-MiniLM-L6-v2", "input": "x"}).status_code == 401
            assert c.post("/embed", json={"inputs": ["x"]}, headers={"Authorization": "Bearer wrong"}).status_code == 401
            assert c.get("/ready").status_code == 200 and c.get("/health").status_code == 200


def ready_right_after_a_request(c: httpx.Client) -> httpx.Response:
    """/ready while the breaker is open: a request that meets the unreachable Redis opens it for
    EMBEDDER_CACHE_BREAKER_S, and on a machine busy with the other checks the gap between the last of a series
    of requests and /ready can outlast that; so ask right after one (three tries)."""
    for _ in range(3):
        assert c.post("/embed", json={"inputs": [f"probe {time.monotonic_ns()}"]}).status_code == 200
        ready = c.get("/ready")
        if ready.json().get("cache") == "degraded":
            break
    return ready


def test_redis_down_every_request_200_and_ready_degraded():
    assert httpx.post(f"{GATE}/down", timeout=10).text == "down"
    with client(A) as a, client(B) as b:
        statuses = [c.post("/embed", json={"inputs": [f"while Redis is down {i}", TEXTS[0]]}).status_code
                    for i in range(10) for c in (a, b)]
        ready = [ready_right_after_a_request(c) for c in (a, b)]
        errors = [metric(c, 'embedder_cache_errors_total{operation="read"}') for c in (a, b)]
    assert statuses == [200] * 20
    assert all(r.status_code == 200 and r.json()["cache"] == "degraded" for r in ready), [r.text for r in ready]
    assert all(e >= 1 for e in errors)


def test_after_redis_restarts_entries_are_written_and_hit_again():
    texts = ["Written after Redis came back."]
    assert httpx.post(f"{GATE}/up", timeout=10).text == "up"
    with client(A) as a, client(B) as b:
        deadline = time.monotonic() + 30  # the breaker lets a call through again after EMBEDDER_CACHE_BREAKER_S
        while a.get("/ready").json()["cache"] != "ok" or b.get("/ready").json()["cache"] != "ok":
            embed(a, ["probe the cache"])
            embed(b, ["probe the cache"])
            assert time.monotonic() < deadline, "the cache never recovered"
            time.sleep(0.5)
        first, second = embedded_on_a_then_hit_on_b(a, b, texts)
    np.testing.assert_array_equal(first, second)
