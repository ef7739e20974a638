"""Admission control: a cap on the work queued and in flight, so memory and drain time stay bounded.

Every embedding request holds a :class:`Ticket` from before it is tokenized until its
response is built: its number of texts and its tokens (an upper bound from the text lengths
until the tokenizer has run, then the real count). A request that would take the totals past
``max_texts`` or ``max_tokens`` is refused at once with 503 and ``Retry-After`` (never
queued, never a crash); the caps hold at any concurrency. One request always fits an empty
service: the settings are checked so that ``max_texts >= EMBEDDER_MAX_INPUTS`` and
``max_tokens >= EMBEDDER_MAX_INPUTS x max_seq_length``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from app.errors import Overloaded


@dataclass(slots=True)
class Ticket:
    admission: Admission
    texts: int
    tokens: int
    released: bool = False

    def resize(self, tokens: int) -> None:
        """Replace the token estimate with the real count (may exceed the cap slightly)."""
        if not self.released:
            self.admission.tokens += tokens - self.tokens
            self.tokens = tokens

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.admission.texts -= self.texts
            self.admission.tokens -= self.tokens

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Admission:
    def __init__(
        self, *, max_texts: int, max_tokens: int, drain_seconds: Callable[[int], float] | None = None
    ) -> None:
        self.max_texts = max_texts
        self.max_tokens = max_tokens
        self.texts = 0  # admitted and not yet answered
        self.tokens = 0
        self.rejected = 0
        self._drain_seconds = drain_seconds  # seconds to run that many tokens, for Retry-After

    def admit(self, texts: int, tokens: int) -> Ticket:
        """Reserve room for a request, or raise Overloaded (503 + Retry-After)."""
        if self.texts + texts > self.max_texts or self.tokens + tokens > self.max_tokens:
            self.rejected += 1
            wait = self.retry_after(tokens)
            raise Overloaded(
                f"The service is at capacity ({self.texts} texts / {self.tokens} tokens admitted; "
                f"limits EMBEDDER_MAX_QUEUED_TEXTS={self.max_texts}, "
                f"EMBEDDER_MAX_QUEUED_TOKENS={self.max_tokens}). Retry in {wait} s, "
                f"send fewer texts per request, or add replicas.",
                retry_after=wait,
            )
        self.texts += texts
        self.tokens += tokens
        return Ticket(self, texts, tokens)

    def retry_after(self, tokens: int) -> int:
        """Whole seconds until enough admitted work has run for ``tokens`` more to fit (>= 1)."""
        excess = max(self.tokens + tokens - self.max_tokens, 0)
        if self._drain_seconds is None or excess == 0:
            return 1
        return max(1, math.ceil(self._drain_seconds(excess)))
