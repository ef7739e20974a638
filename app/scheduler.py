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
2. **Fill by length.** In the queue sorted by length, the call grows from the seed to the
   neighbour closest in length to the seed, one text at a time, while the call stays within
   ``max_texts``, ``max_tokens`` padded tokens (texts x the longest text of the call) and a
   padding bound (padded tokens <= ``MAX_PADDING_RATIO`` x real tokens). Longer texts join
   only up to ``max(2 x seed length, MIN_GROUP_WIDTH)`` tokens, so the seed's call is never
   made slow by texts much longer than it. Texts of similar length share a call whatever
   request they come from; a request's texts may be spread over several calls.

No starvation: an item picked as seed before item ``x`` has a deadline no later than
``x``'s, so it arrived before ``x``'s deadline. Once ``x``'s deadline has passed, only work
that arrived before that moment can go ahead of it, and admission control caps that work.
A request therefore completes by ``arrival + slack_s_per_token x its tokens`` plus the time
to run the work admitted before that moment (``app.admission``; README "Scheduling").
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import count
from typing import Any

#: A call's padded tokens may be at most this multiple of its real tokens (padding <= 50%).
MAX_PADDING_RATIO = 2.0
#: Texts up to this many tokens always may share a call (below it, per-call cost dominates).
MIN_GROUP_WIDTH = 32

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

    def __init__(self, *, max_texts: int, max_tokens: int, slack_s_per_token: float) -> None:
        if max_texts < 1 or max_tokens < 1:
            raise ValueError("max_texts and max_tokens must be >= 1")
        self.max_texts = max_texts
        self.max_tokens = max_tokens
        self.slack_s_per_token = slack_s_per_token
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
        lo = hi = seed  # the call is items[lo:hi + 1], contiguous in length order
        longest = items[seed].length
        real = longest
        target = items[seed].length
        widest = max(2 * target, MIN_GROUP_WIDTH)
        while hi - lo + 1 < self.max_texts:
            left = items[lo - 1] if lo > 0 else None
            right = items[hi + 1] if hi + 1 < len(items) else None
            left_ok = left is not None and self._fits(hi - lo + 2, longest, real + left.length)
            right_ok = (
                right is not None
                and right.length <= widest
                and self._fits(hi - lo + 2, max(longest, right.length), real + right.length)
            )
            if left_ok and (not right_ok or target - left.length <= right.length - target):
                lo -= 1
                real += left.length
            elif right_ok:
                hi += 1
                real += right.length
                longest = max(longest, right.length)
            else:
                break
        call = items[lo : hi + 1]
        del items[lo : hi + 1]
        for it in call:
            it.request.pending -= 1
            self.queued_tokens -= it.length
            if it.request.pending == 0:
                self._requests.discard(it.request)
        return call

    def _fits(self, texts: int, longest: int, real: int) -> bool:
        padded = texts * longest
        return padded <= self.max_tokens and padded <= MAX_PADDING_RATIO * real


def padded_tokens(call: list[Item]) -> int:
    return len(call) * max((it.length for it in call), default=0)
