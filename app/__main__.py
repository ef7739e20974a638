"""``python -m app``: run the service with uvicorn (host and port from settings).

Exits 2 with a readable message when a setting is invalid. On SIGTERM (or SIGINT):

1. /ready says 503 at once, while every route keeps serving, for EMBEDDER_SHUTDOWN_DELAY_S:
   the time load balancers (Kubernetes endpoints, a proxy's health checks) take to stop
   sending new requests here, which a preStop hook would otherwise have to sleep through;
2. then uvicorn stops accepting connections and lets admitted requests finish (up to
   EMBEDDER_GRACEFUL_TIMEOUT_S), the lifespan shutdown runs, and the process exits 0.

A second signal skips what is left of the delay.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

import uvicorn
from pydantic import ValidationError


def main() -> int:
    # The imports and the model's set-up make objects that live as long as the process, and no garbage: the
    # cyclic collector's passes over them only slow the start (~5 % of the imports). app.service turns it on
    # again at /ready, with what is there frozen.
    gc.disable()
    from app.config import Settings, describe_settings_error
    from app.logging import configure_logging

    try:
        settings = Settings()
    except ValidationError as exc:
        message = describe_settings_error(exc)
        level = os.environ.get("EMBEDDER_LOG_LEVEL", "info").lower()
        configure_logging(level if level in ("debug", "info", "warning", "error") else "info")
        logging.getLogger("app").error(message, extra={"event": "invalid_settings"})
        print(message, file=sys.stderr)
        return 2

    try:
        # The model starts on threads now, while the web stack imports (app.startup).
        from app.startup import begin

        configure_logging(settings.log_level)
        started = begin(settings)
        from app.main import create_app

        app = create_app(settings, started)
    except Exception as exc:  # e.g. an unreadable model.lock.json
        message = f"cannot start: {type(exc).__name__}: {exc}"
        logging.getLogger("app").exception(message, extra={"event": "startup_failed"})
        print(message, file=sys.stderr)
        return 1
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # app.logging already routes every logger to JSON on stdout
        access_log=False,  # app.middleware writes the access log
        timeout_graceful_shutdown=settings.graceful_timeout_s,
        server_header=False,
        lifespan="on",
    )
    # uvicorn handles SIGTERM/SIGINT itself (graceful shutdown), then restores the previous
    # handlers and re-raises the signal. With the default handler the process would die
    # of the signal (exit 143); after a graceful shutdown we want a clean exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_cleanly)
    DrainingServer(config, app.state.service.begin_shutdown, settings.shutdown_delay_s).run()
    return 0


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a readiness flip and a delay between the signal and its shutdown."""

    def __init__(self, config: uvicorn.Config, flip: Callable[[], None], delay_s: float) -> None:
        super().__init__(config)
        self._flip, self._delay_s = flip, delay_s
        self._pending: asyncio.TimerHandle | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._pending is not None or self._delay_s <= 0:  # second signal, or no delay
            if self._pending is not None:
                self._pending.cancel()
            self._flip()
            super().handle_exit(sig, frame)
            return
        self._flip()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not serving yet (or any more): nothing to keep serving
            super().handle_exit(sig, frame)
            return
        logging.getLogger("app").info(
            "shutdown signal: /ready is 503, serving on before the drain",
            extra={"signal": signal.Signals(sig).name, "delay_s": self._delay_s},
        )
        self._pending = loop.call_later(self._delay_s, super().handle_exit, sig, frame)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
