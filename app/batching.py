"""Dynamic batching: concurrent requests share one ONNX Runtime call.

One asyncio task owns a FIFO of jobs (one job = the token ids of one request) and a
single worker thread runs the model, so the event loop never blocks on inference.

Gathering policy, tuned for latency first:

* Idle model, lone request: it goes at once (no timer). Requests already parsed in
  the same event-loop turn ride along for free, because the worker task only runs
  after the ready request tasks have enqueued.
* While the model is busy, new requests queue up; when it frees, everything queued
  (up to ``max_batch`` texts) goes in the next call.
* Under concurrent load (the previous call carried more than one request) the
  worker waits up to ``max_wait_ms`` for as many requests as the previous call
  had, so closed-loop clients that all resubmit at once land in one big call
  instead of a tiny one followed by a big one.

A request with more texts than ``max_batch`` is split over several calls; its
texts are sorted by length first so each call pads little. Padding is to the
longest sequence of each call (see ``EmbeddingModel.run``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

RunFn = Callable[[Sequence[Sequence[int]]], np.ndarray]


class BatcherClosed(RuntimeError):
    """The batcher is stopped (service shutting down)."""


@dataclass(slots=True, eq=False)
class _Job:
    ids: list[Sequence[int]]  # in processing order (sorted by length when split)
    order: list[int] | None  # original index of each entry of ids, if reordered
    future: asyncio.Future
    out: np.ndarray | None = None
    cursor: int = 0  # next entry of ids to schedule
    filled: int = 0  # entries whose embeddings are in out
    enqueued_at: float = field(default_factory=time.perf_counter)


class Batcher:
    def __init__(
        self,
        run: RunFn,
        executor: ThreadPoolExecutor,
        *,
        max_batch: int,
        max_wait_s: float,
        observe: Callable[[int, int, float, float], None] | None = None,
    ) -> None:
        self._run = run
        self._executor = executor
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._observe = observe  # (texts, requests, seconds in ORT, oldest queue wait)
        self._queue: deque[_Job] = deque()
        self._queued_texts = 0
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._last_requests = 1
        self._closed = False

    # -- public ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    async def stop(self) -> None:
        """Stop the worker task; queued jobs that never ran fail with BatcherClosed."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._queue:
            job = self._queue.popleft()
            if not job.future.done():
                job.future.set_exception(BatcherClosed("service is shutting down"))
        self._queued_texts = 0

    @property
    def queued_texts(self) -> int:
        return self._queued_texts

    async def submit(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Embed the token id sequences of one request; returns [len(ids), dim] float32."""
        if self._closed:
            raise BatcherClosed("service is shutting down")
        if not ids:
            raise ValueError("nothing to embed")
        order = None
        seqs = list(ids)
        if len(seqs) > self.max_batch:  # split over calls: sort so each call pads little
            order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]), reverse=True)
            seqs = [seqs[i] for i in order]
        job = _Job(seqs, order, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self._queued_texts += len(seqs)
        self._wakeup.set()
        return await job.future

    # -- worker ---------------------------------------------------------------------------
    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._gather()
            parts = self._take()
            if not parts:
                continue
            batch = [seq for job, lo, hi in parts for seq in job.ids[lo:hi]]
            oldest = time.perf_counter() - min(job.enqueued_at for job, _, _ in parts)
            started = time.perf_counter()
            try:
                out = await loop.run_in_executor(self._executor, self._run, batch)
            except asyncio.CancelledError:
                self._fail(parts, BatcherClosed("service is shutting down"))
                raise
            except Exception as exc:  # keep serving: only these requests fail
                log.exception("inference failed", extra={"batch_texts": len(batch)})
                self._fail(parts, exc)
                continue
            elapsed = time.perf_counter() - started
            requests = len({id(job) for job, _, _ in parts})
            self._last_requests = requests
            if self._observe is not None:
                self._observe(len(batch), requests, elapsed, oldest)
            self._scatter(parts, out)

    async def _gather(self) -> None:
        """Under load, wait (bounded) for the previous call's number of requests."""
        target = min(self._last_requests, self.max_batch)
        if self.max_wait_s <= 0 or target <= 1:
            return
        deadline = time.perf_counter() + self.max_wait_s
        while len(self._queue) < target and self._queued_texts < self.max_batch:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                return

    def _take(self) -> list[tuple[_Job, int, int]]:
        """Pop up to max_batch texts off the FIFO as (job, start, end) slices."""
        parts: list[tuple[_Job, int, int]] = []
        room = self.max_batch
        while self._queue and room > 0:
            job = self._queue[0]
            if job.future.done():  # caller went away (cancelled): skip its rest
                self._queue.popleft()
                self._queued_texts -= len(job.ids) - job.cursor
                continue
            lo = job.cursor
            hi = min(len(job.ids), lo + room)
            parts.append((job, lo, hi))
            job.cursor = hi
            room -= hi - lo
            self._queued_texts -= hi - lo
            if hi == len(job.ids):
                self._queue.popleft()
        return parts

    @staticmethod
    def _scatter(parts: list[tuple[_Job, int, int]], out: np.ndarray) -> None:
        row = 0
        for job, lo, hi in parts:
            n = hi - lo
            if job.future.done():
                row += n
                continue
            if job.out is None:
                job.out = np.empty((len(job.ids), out.shape[1]), dtype=np.float32)
            job.out[lo:hi] = out[row : row + n]
            row += n
            job.filled += n
            if job.filled == len(job.ids):
                result = job.out
                if job.order is not None:  # back to the request's order
                    result = np.empty_like(job.out)
                    result[job.order] = job.out
                job.future.set_result(result)

    @staticmethod
    def _fail(parts: list[tuple[_Job, int, int]], exc: BaseException) -> None:
        for job, _, _ in parts:
            if not job.future.done():
                job.future.set_exception(exc)
