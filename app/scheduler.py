"""Scheduling policy: which queued texts go into the next ONNX Runtime call.

Pure data structure, no asyncio and no clock of its own (time comes in as each request's
arrival), so it is tested deterministically. The worker loop that runs calls and scatters results is
``app.batching``.

Every text of every queued request is an :class:`Item` with its token length. A call is
formed in two steps:

1. **Seed: earliest deadline first.** Deadlines are virtual finish times, as in fair
   queueing: a request's texts, shortest first, get the deadlines they would have if the
   request alone were served at ``1 / slack_s_per_token`` tokens per second, i.e. its arrival
   time plus ``slack_s_per_token`` x the tokens of its texts up to and including this one.
   A one-text query therefore goes before a passage that arrived a little earlier, and
   before the later texts of a large request that arrived long before it (a big request
   does not block the service for its whole length once its first deadlines pass); among
   texts of similar cost the order is arrival order.
2. **Group by cost.** Around the seed, the queued texts sorted by length are split into the
   cheapest sequence of calls under a cost model measured at start (``app.service``): a call
   costs ``overhead_tokens`` (its fixed cost: one ORT run, in padded-token equivalents) plus
   its padded tokens (texts x its longest text), and holds at most ``max_texts`` texts and
   ``max_tokens`` padded tokens. The next call is the group of that split that holds the seed.
   Texts of similar length therefore share a call whatever request they come from, padding is
   paid only where it is cheaper than another call, and a request's texts may be spread over
   several calls. (The split is a dynamic program over the ``NEIGHBOURHOOD x max_texts`` texts on
   each side of the seed; in length order the cheapest split is contiguous.)

No starvation: an item picked as seed before item ``x`` has a deadline no later than
``x``'s, so it arrived before ``x``'s deadline. Once ``x``'s deadline has passed, only work
that arrived before that moment can go ahead of it, and admission control caps that work.
A request therefore completes by ``arrival + slack_s_per_token x its tokens`` plus the time
to run the work admitted before that moment (``app.admission``; docs/scheduling.md).
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import count
from typing import Any

#: The split that picks the next call looks this many x max_texts texts to each side of the seed.
NEIGHBOURHOOD = 2

_arrivals = count()


@dataclass(slots=True, eq=False)
class Request:
    """One request's texts as the policy sees them: token lengths, arrival, an owner handle."""

    lengths: list[int]
    arrived: float
    owner: Any = None  # the worker's per-request state (future, output buffer)
    seq: int = field(default_factory=lambda: next(_arrivals))
    pending: int = 0  # texts not yet handed to a call

    @property
    def tokens(self) -> int:
        return sum(self.lengths)


@dataclass(slots=True, eq=False)
class Item:
    request: Request
    index: int  # position of the text in its request
    length: int
    deadline: float

    def sort_key(self) -> tuple[int, int, int]:
        return (self.length, self.request.seq, self.index)


class Policy:
    """The queue of texts waiting for a call, and the rule that forms the next call."""

    def __init__(
        self, *, max_texts: int, max_tokens: int, slack_s_per_token: float, overhead_tokens: float = 0.0
    ) -> None:
        if max_texts < 1 or max_tokens < 1:
            raise ValueError("max_texts and max_tokens must be >= 1")
        if overhead_tokens < 0:
            raise ValueError("overhead_tokens must be >= 0")
        self.max_texts = max_texts
        self.max_tokens = max_tokens
        self.slack_s_per_token = slack_s_per_token
        self.overhead_tokens = overhead_tokens
        self._items: list[Item] = []  # sorted by Item.sort_key
        self._requests: set[Request] = set()  # requests with texts still queued
        self.queued_tokens = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def queued_texts(self) -> int:
        return len(self._items)

    @property
    def queued_requests(self) -> int:
        return len(self._requests)

    def requests(self) -> list[Request]:
        """The requests that still have texts in the queue."""
        return list(self._requests)

    def add(self, request: Request) -> None:
        """Queue every text of ``request``."""
        done = 0  # tokens of this request before the text, shortest first
        for i in sorted(range(len(request.lengths)), key=request.lengths.__getitem__):
            n = request.lengths[i]
            done += n
            item = Item(request, i, n, request.arrived + done * self.slack_s_per_token)
            insort(self._items, item, key=Item.sort_key)
        request.pending = len(request.lengths)
        self._requests.add(request)
        self.queued_tokens += request.tokens

    def discard(self, requests: Iterable[Request]) -> int:
        """Drop the queued texts of ``requests`` (callers gone); returns how many were dropped."""
        gone = set(requests) & self._requests
        if not gone:
            return 0
        keep = [it for it in self._items if it.request not in gone]
        dropped = [it for it in self._items if it.request in gone]
        self._items = keep
        for it in dropped:
            it.request.pending -= 1
            self.queued_tokens -= it.length
        self._requests -= gone
        return len(dropped)

    def take(self) -> list[Item]:
        """Remove and return the texts of the next call (empty when nothing is queued)."""
        items = self._items
        if not items:
            return []
        seed = min(range(len(items)), key=lambda i: (items[i].deadline, items[i].request.seq, items[i].index))
        reach = NEIGHBOURHOOD * self.max_texts
        first = max(0, seed - reach)
        lo, hi = self._group([it.length for it in items[first : seed + reach + 1]], seed - first)
        lo, hi = first + lo, first + hi
        call = items[lo:hi]
        del items[lo:hi]
        for it in call:
            it.request.pending -= 1
            self.queued_tokens -= it.length
            if it.request.pending == 0:
                self._requests.discard(it.request)
        return call

    def _group(self, lengths: list[int], seed: int) -> tuple[int, int]:
        """The group [lo, hi) holding ``seed`` in the cheapest split of ``lengths`` (ascending) into
        calls: cost[j] = min over i of cost[i] + overhead + (j - i) x lengths[j - 1]."""
        n, overhead = len(lengths), self.overhead_tokens
        cost, start = [0.0] * (n + 1), [0] * (n + 1)
        for j in range(1, n + 1):
            longest = lengths[j - 1]
            fits = max(1, min(self.max_texts, self.max_tokens // longest))
            best, best_i = float("inf"), j - 1
            for i in range(max(0, j - fits), j):  # ties go to the larger call
                c = cost[i] + (j - i) * longest
                if c < best:
                    best, best_i = c, i
            cost[j], start[j] = best + overhead, best_i
        hi = n
        while start[hi] > seed:
            hi = start[hi]
        return start[hi], hi


def padded_tokens(call: list[Item]) -> int:
    return len(call) * max((it.length for it in call), default=0)
