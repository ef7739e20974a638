"""The dynamic batcher with the real model: gathering, no idle wait, splitting, failures."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import pytest_asyncio
from svc_support import make_settings

from app.batching import Batcher, BatcherClosed
from app.model import EmbeddingModel

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

    def __call__(self, texts: int, requests: int, seconds: float, waited: float) -> None:
        self.batches.append((texts, requests))


@pytest_asyncio.fixture
async def make_batcher(model):
    executor = ThreadPoolExecutor(max_workers=1)
    made: list[Batcher] = []

    def make(run=None, *, max_batch=32, max_wait_s=0.002) -> tuple[Batcher, Recorder]:
        rec = Recorder()
        b = Batcher(run or model.run, executor, max_batch=max_batch, max_wait_s=max_wait_s, observe=rec)
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
    batcher, rec = make_batcher(max_batch=32)
    out = await batcher.submit(model.tokenize(TEXTS).ids)
    assert [t for t, _ in rec.batches] == [32, 32, 6]
    np.testing.assert_allclose(out, expected, atol=1e-5)


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


async def test_stop_fails_queued_requests(model, make_batcher):
    batcher, _ = make_batcher()
    await batcher.stop()
    with pytest.raises(BatcherClosed):
        await batcher.submit(model.tokenize(["late"]).ids)
