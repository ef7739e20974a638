"""The worker loop: run the calls the scheduling policy forms, scatter the results.

One asyncio task owns the loop; up to ``workers`` calls run at once on the executor's
threads (one ORT session, thread-safe), so the event loop never blocks on inference. Which
texts go into each call is ``app.scheduler``'s decision; this module only waits, runs and
scatters:

* Idle model, lone request: it goes at once (no timer). Requests already parsed in the
  same event-loop turn ride along for free, because the worker task only runs after the
  ready request tasks have queued.
* Under concurrent load (the previous call carried more than one request) the loop waits
  up to ``max_wait_s`` for as many requests as the previous call had, so closed-loop
  clients that all resubmit at once land in one call instead of a tiny one and a big one.
* Results go back to each request in its own order, whatever calls its texts rode in.
* A caller that goes away (cancelled) has its queued texts dropped at once. ``stop()``
  fails what is still queued with :class:`BatcherClosed`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from app.scheduler import Item, Policy, Request, padded_tokens

log = logging.getLogger(__name__)

RunFn = Callable[[Sequence[Sequence[int]]], np.ndarray]
#: observe(texts, requests, padded tokens, seconds in ORT, oldest wait)
ObserveFn = Callable[[int, int, int, float, float], None]


class BatcherClosed(RuntimeError):
    """The batcher is stopped (service shutting down)."""


@dataclass(slots=True, eq=False)
class _Job:
    ids: Sequence[Sequence[int]]
    future: asyncio.Future
    out: np.ndarray | None = None
    filled: int = 0


class Batcher:
    def __init__(
        self,
        run: RunFn,
        executor: Executor,
        policy: Policy,
        *,
        max_wait_s: float,
        observe: ObserveFn | None = None,
        clock: Callable[[], float] = time.perf_counter,
        workers: int = 1,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self._run = run
        self._executor = executor
        self.policy = policy
        self.max_wait_s = max_wait_s
        self._observe = observe
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._slots = asyncio.Semaphore(workers)
        self._calls: dict[asyncio.Task, int] = {}  # running call -> its padded tokens
        self._last_requests = 1
        self._closed = False

    # -- public ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    async def stop(self) -> None:
        """Stop the worker task; queued texts that never ran fail with BatcherClosed."""
        self._closed = True
        tasks = [t for t in (self._task, *self._calls) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        leftover = self.policy.requests()
        self.policy.discard(leftover)
        for request in leftover:
            self._fail_job(request.owner, BatcherClosed("service is shutting down"))

    @property
    def in_flight_tokens(self) -> int:
        """Padded tokens of the calls running now."""
        return sum(self._calls.values())

    @property
    def queued_texts(self) -> int:
        return self.policy.queued_texts

    @property
    def queued_tokens(self) -> int:
        return self.policy.queued_tokens

    async def submit(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Embed the token id sequences of one request; returns [len(ids), dim] float32."""
        if self._closed:
            raise BatcherClosed("service is shutting down")
        if not ids:
            raise ValueError("nothing to embed")
        job = _Job(ids, asyncio.get_running_loop().create_future())
        request = Request([len(seq) for seq in ids], self._clock(), owner=job)
        self.policy.add(request)
        self._wakeup.set()
        try:
            return await job.future
        finally:
            if request.pending:  # cancelled or failed: its queued texts never run
                self.policy.discard([request])

    # -- worker ---------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            if not self.policy:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            await self._slots.acquire()  # a worker is free
            await self._gather()
            call = self.policy.take()
            if not call:
                self._slots.release()
                continue
            padded = padded_tokens(call)
            task = asyncio.get_running_loop().create_task(self._call(call, padded))
            self._calls[task] = padded
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._calls.pop(task, None)
        self._slots.release()

    async def _call(self, call: list[Item], padded: int) -> None:
        """Run one call on a worker thread and scatter its rows; failures stay with its requests."""
        requests = {it.request for it in call}
        batch = [it.request.owner.ids[it.index] for it in call]
        oldest = self._clock() - min(r.arrived for r in requests)
        started = self._clock()
        try:
            out = await asyncio.get_running_loop().run_in_executor(self._executor, self._run, batch)
        except asyncio.CancelledError:
            self._fail(call, BatcherClosed("service is shutting down"))
            raise
        except Exception as exc:  # keep serving: only these requests fail
            log.exception("inference failed", extra={"batch_texts": len(batch)})
            self._fail(call, exc)
            return
        elapsed = self._clock() - started
        self._last_requests = len(requests)
        if self._observe is not None:
            self._observe(len(batch), len(requests), padded, elapsed, oldest)
        self._scatter(call, out)

    async def _gather(self) -> None:
        """Under load, wait (bounded) for the previous call's number of requests."""
        target = min(self._last_requests, self.policy.max_texts)
        if self.max_wait_s <= 0 or target <= 1:
            return
        deadline = self._clock() + self.max_wait_s
        while self.policy.queued_requests < target and self.policy.queued_texts < self.policy.max_texts:
            remaining = deadline - self._clock()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                return

    def _scatter(self, call: list[Item], out: np.ndarray) -> None:
        for row, it in enumerate(call):
            job: _Job = it.request.owner
            if job.future.done():  # caller gone, or an earlier call of it failed
                continue
            if job.out is None:
                job.out = np.empty((len(job.ids), out.shape[1]), dtype=np.float32)
            job.out[it.index] = out[row]
            job.filled += 1
            if job.filled == len(job.ids):
                job.future.set_result(job.out)

    def _fail(self, call: list[Item], exc: BaseException) -> None:
        for it in call:
            self._fail_job(it.request.owner, exc)

    @staticmethod
    def _fail_job(job: _Job, exc: BaseException) -> None:
        if not job.future.done():
            job.future.set_exception(exc)
