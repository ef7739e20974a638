"""API keys: ``Authorization: Bearer <key>`` on every route but the open ones (docs/cache-and-keys.md).

Keys come from ``EMBEDDER_API_KEYS`` (comma-separated) and ``EMBEDDER_API_KEYS_FILE`` (one key
per line, ``#`` comments; a mounted Kubernetes Secret). The file is re-read when it changes, so
a key is rotated without a restart: add the new key, move the clients, remove the old one.
Keys are compared as SHA-256 digests with :func:`hmac.compare_digest`, against every key each
time, so neither a key's length nor its position shows in the timing; no key is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import error_response

log = logging.getLogger(__name__)

#: Open without a key: probes, and the API's own description.
OPEN_PATHS = frozenset({"/health", "/ready", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
#: Open without a key, every path under these: the docs pages' own scripts, styles and icon (app.main).
OPEN_PREFIXES = ("/static-offline-docs/",)
#: How often the keys file is checked for changes.
RECHECK_S = 5.0


class KeyRing:
    def __init__(
        self, keys: str = "", file: Path | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._inline = _digests(keys.split(","))
        self._file = file
        self._clock = clock
        self._from_file: list[bytes] = []
        self._stamp: tuple[int, int] | None = None
        self._checked = clock()
        if file is not None:
            self._load(initial=True)

    @property
    def enabled(self) -> bool:
        return self._file is not None or bool(self._inline)

    def accepts(self, presented: str | None) -> bool:
        self._refresh()
        if not presented:
            return False
        digest = hashlib.sha256(presented.encode()).digest()
        ok = False
        for key in (*self._inline, *self._from_file):  # no early exit
            ok |= hmac.compare_digest(digest, key)
        return ok

    def _refresh(self) -> None:
        if self._file is None or self._clock() - self._checked < RECHECK_S:
            return
        self._checked = self._clock()
        self._load(initial=False)

    def _load(self, *, initial: bool) -> None:
        assert self._file is not None
        try:
            st = os.stat(self._file)
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            lines = self._file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            if initial:
                raise ValueError(f"EMBEDDER_API_KEYS_FILE {str(self._file)!r} cannot be read: {exc.strerror}") from exc
            log.warning("API keys file unreadable; keeping the keys loaded before", extra={"file": str(self._file)})
            return
        keys = _digests(line.split("#", 1)[0] for line in lines)
        if not keys:
            if initial:
                raise ValueError(f"EMBEDDER_API_KEYS_FILE {str(self._file)!r} holds no key (one per line)")
            log.warning("API keys file has no key; keeping the keys loaded before", extra={"file": str(self._file)})
            return
        self._from_file, self._stamp = keys, stamp
        if not initial:
            log.info("API keys reloaded", extra={"file": str(self._file), "keys": len(keys)})


def _digests(keys) -> list[bytes]:
    return [hashlib.sha256(k.strip().encode()).digest() for k in keys if k.strip()]


def bearer_token(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class RequireKey:
    """Pure-ASGI middleware: 401 (OpenAI-style body on /v1) unless a valid key is presented."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: KeyRing,
        open_metrics: bool = True,
        on_reject: Callable[[], object] | None = None,
    ) -> None:
        self.app = app
        self.keys = keys
        self.open_paths = OPEN_PATHS | ({"/metrics"} if open_metrics else set())
        self._on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys.enabled or self._is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        if self.keys.accepts(token):
            await self.app(scope, receive, send)
            return
        if self._on_reject is not None:
            self._on_reject()
        if token:
            message = "Incorrect API key provided. Check the key, or get a current one (keys are rotated)."
        else:
            message = "Missing API key: send the header 'Authorization: Bearer <key>' (this service requires one)."
        response = error_response(
            Request(scope), 401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
        )
        await response(scope, receive, send)

    def _is_open(self, path: str) -> bool:
        return path in self.open_paths or path.startswith(OPEN_PREFIXES)
