"""Admission control: a cap on the work queued and in flight, so memory and drain time stay bounded.

Two gates. :class:`BodyBudget` (ASGI middleware) caps the request bodies being read and parsed:
a POST whose ``Content-Length`` does not fit in ``EMBEDDER_MAX_QUEUED_BYTES`` next to the bodies
already in flight is refused before its body is read, so parsing cannot outgrow memory
whatever the concurrency (one request always fits an otherwise idle service).
:class:`Admission` then caps the texts and tokens, as follows.

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

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import Overloaded, error_response


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
        self,
        *,
        max_texts: int,
        max_tokens: int,
        drain_seconds: Callable[[int], float] | None = None,
        on_reject: Callable[[], object] | None = None,
    ) -> None:
        self.max_texts = max_texts
        self.max_tokens = max_tokens
        self.texts = 0  # admitted and not yet answered
        self.tokens = 0
        self._drain_seconds = drain_seconds  # seconds to run that many tokens, for Retry-After
        self._on_reject = on_reject

    def admit(self, texts: int, tokens: int) -> Ticket:
        """Reserve room for a request, or raise Overloaded (503 + Retry-After)."""
        if self.texts + texts > self.max_texts or self.tokens + tokens > self.max_tokens:
            if self._on_reject is not None:
                self._on_reject()
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


class BodyBudget:
    """Pure-ASGI middleware: refuse (503 + Retry-After) POST bodies past the in-flight byte cap."""

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, max_body: int, on_reject: Callable[[], object] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_body = max_body  # assumed size of a body without Content-Length (chunked)
        self.in_flight = 0
        self._on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        size = self._declared_size(scope)
        if self.in_flight and self.in_flight + size > self.max_bytes:
            if self._on_reject is not None:
                self._on_reject()
            message = (
                f"The service is at capacity ({self.in_flight} bytes of request bodies in flight; limit "
                f"EMBEDDER_MAX_QUEUED_BYTES={self.max_bytes}). Retry in 1 s, send smaller requests, or add replicas."
            )
            response = error_response(
                Request(scope), 503, message, code="overloaded", type_="server_error", headers={"Retry-After": "1"}
            )
            await response(scope, receive, send)
            return
        self.in_flight += size
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= size

    def _declared_size(self, scope: Scope) -> int:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return max(0, int(value))
                except ValueError:
                    return self.max_body
        return self.max_body
