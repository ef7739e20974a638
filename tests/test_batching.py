"""The worker loop with the real model: gathering, no idle wait, splitting and re-ordering, failures,
cancellation, shutdown. The policy's choices on their own: tests/test_scheduler.py."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import pytest_asyncio
from svc_support import make_settings

from app.batching import Batcher, BatcherClosed
from app.model import EmbeddingModel
from app.scheduler import Policy

TEXTS = [f"sentence {i}: " + "padding words " * (i % 9) for i in range(70)]


@pytest.fixture(scope="module")
def model(model_dir) -> EmbeddingModel:
    m = EmbeddingModel(make_settings(model_dir))
    m.load()
    return m


@pytest.fixture(scope="module")
def expected(model) -> np.ndarray:
    return np.concatenate([model.run([ids]) for ids in model.tokenize(TEXTS).ids])


class Recorder:
    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []  # (texts, requests)
        self.padded: list[int] = []

    def __call__(self, texts: int, requests: int, padded: int, seconds: float, waited: float) -> None:
        self.batches.append((texts, requests))
        self.padded.append(padded)


@pytest_asyncio.fixture
async def make_batcher(model):
    executor = ThreadPoolExecutor(max_workers=1)
    made: list[Batcher] = []

    def make(run=None, *, max_batch=32, max_tokens=4096, max_wait_s=0.002) -> tuple[Batcher, Recorder]:
        rec = Recorder()
        policy = Policy(max_texts=max_batch, max_tokens=max_tokens, slack_s_per_token=0.001, overhead_tokens=64)
        b = Batcher(run or model.run, executor, policy, max_wait_s=max_wait_s, observe=rec)
        b.start()
        made.append(b)
        return b, rec

    yield make
    for b in made:
        await b.stop()
    executor.shutdown(wait=True)


async def test_concurrent_requests_share_calls(model, expected, make_batcher):
    batcher, rec = make_batcher()
    ids = model.tokenize(TEXTS[:40]).ids
    results = await asyncio.gather(*(batcher.submit([seq]) for seq in ids))
    np.testing.assert_allclose(np.concatenate(results), expected[:40], atol=1e-5)
    assert sum(t for t, _ in rec.batches) == 40
    assert len(rec.batches) < 40 and max(r for _, r in rec.batches) > 1
    assert all(t <= 32 for t, _ in rec.batches)


async def test_lone_request_does_not_wait(model, make_batcher):
    batcher, rec = make_batcher(max_wait_s=0.5)
    ids = model.tokenize(["alone"]).ids
    await batcher.submit(ids)  # warm
    started = time.perf_counter()
    for _ in range(3):
        await batcher.submit(ids)
    assert (time.perf_counter() - started) / 3 < 0.25  # far below max_wait
    assert rec.batches[-1] == (1, 1)


async def test_under_load_waits_briefly_for_more(model, make_batcher):
    batcher, rec = make_batcher(max_wait_s=0.3)
    ids = model.tokenize(TEXTS[:4]).ids
    await asyncio.gather(*(batcher.submit([s]) for s in ids))  # previous call: 4 requests
    rec.batches.clear()

    async def late(seq, delay):
        await asyncio.sleep(delay)
        return await batcher.submit([seq])

    await asyncio.gather(*(late(s, 0.02 * i) for i, s in enumerate(ids)))
    assert rec.batches == [(4, 4)]


async def test_big_request_is_split_and_keeps_order(model, expected, make_batcher):
    batcher, rec = make_batcher(max_batch=32, max_tokens=256)
    out = await batcher.submit(model.tokenize(TEXTS).ids)
    assert sum(t for t, _ in rec.batches) == len(TEXTS) and len(rec.batches) >= 3
    assert max(rec.padded) <= 256 and max(t for t, _ in rec.batches) <= 32
    np.testing.assert_allclose(out, expected, atol=1e-5)


async def test_concurrent_mixed_requests_come_back_in_their_order(model, expected, make_batcher):
    """Requests of mixed lengths share calls by length; each gets its own texts back in order."""
    batcher, rec = make_batcher(max_batch=8, max_tokens=512)
    ids = model.tokenize(TEXTS).ids
    spans = [(0, 5), (5, 6), (6, 30), (30, 31), (31, 70)]
    results = await asyncio.gather(*(batcher.submit(ids[a:b]) for a, b in spans))
    for (a, b), out in zip(spans, results, strict=True):
        np.testing.assert_allclose(out, expected[a:b], atol=1e-5)
    assert max(r for _, r in rec.batches) > 1  # texts of different requests shared calls
    assert batcher.queued_texts == 0 and batcher.queued_tokens == 0


async def test_failed_call_fails_only_its_requests(model, make_batcher):
    bad = model.tokenize(["poison"]).ids[0]

    def run(batch):
        if any(list(seq) == list(bad) for seq in batch):
            raise RuntimeError("boom")
        return model.run(batch)

    batcher, _ = make_batcher(run)
    with pytest.raises(RuntimeError, match="boom"):
        await batcher.submit([bad])
    ok = await batcher.submit(model.tokenize(["fine"]).ids)
    assert ok.shape == (1, 384)


async def test_cancelled_caller_is_skipped(model, make_batcher):
    batcher, rec = make_batcher(max_batch=8)
    ids = model.tokenize(TEXTS).ids
    task = asyncio.create_task(batcher.submit(ids))  # 9 calls of up to 8 texts
    await asyncio.sleep(0)
    while not rec.batches:
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    out = await batcher.submit(ids[:2])
    assert out.shape == (2, 384)
    assert sum(t for t, _ in rec.batches) < len(ids) + 2  # the rest of the cancelled job never ran
    assert batcher.queued_texts == 0


async def test_stop_fails_queued_requests(model, make_batcher):
    gate = asyncio.Event()
    loop = asyncio.get_running_loop()

    def held_run(batch):  # the first call blocks until the test has queued more and stopped
        asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(30)
        return model.run(batch)

    batcher, rec = make_batcher(held_run, max_batch=1)
    ids = model.tokenize(["first", "queued one", "queued two"]).ids
    tasks = [asyncio.create_task(batcher.submit([seq])) for seq in ids]
    while batcher.queued_texts > 2:  # the first call has started and holds the thread
        await asyncio.sleep(0.001)
    stopping = asyncio.create_task(batcher.stop())
    await asyncio.sleep(0.01)
    gate.set()
    await stopping
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(o, BatcherClosed) for o in outcomes[1:]), outcomes
    assert batcher.queued_texts == 0
    with pytest.raises(BatcherClosed):
        await batcher.submit(model.tokenize(["late"]).ids)


async def test_workers_run_calls_at_once(model, expected):
    """Two workers: two calls are in ORT together (each waits at a barrier for the other; with
    one worker the barrier would break), and each request still gets its own rows."""
    barrier = threading.Barrier(2, timeout=30)

    def run(batch):
        barrier.wait()
        return model.run(batch)

    executor = ThreadPoolExecutor(max_workers=2)
    policy = Policy(max_texts=1, max_tokens=4096, slack_s_per_token=0.001)
    batcher = Batcher(run, executor, policy, max_wait_s=0, workers=2)
    batcher.start()
    try:
        ids = model.tokenize(TEXTS[:2]).ids
        out = await asyncio.gather(*(batcher.submit([seq]) for seq in ids))
        np.testing.assert_allclose(np.concatenate(out), expected[:2], atol=1e-5)
        assert batcher.in_flight_tokens == 0 and batcher.queued_texts == 0
    finally:
        await batcher.stop()
        executor.shutdown(wait=True)
