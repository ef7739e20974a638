"""``python -m app``: run the service with uvicorn (host and port from settings).

Exits 2 with a readable message when a setting is invalid. On SIGTERM uvicorn stops
accepting connections, lets in-flight requests finish (up to
EMBEDDER_GRACEFUL_TIMEOUT_S), runs the lifespan shutdown and exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

from pydantic import ValidationError


def main() -> int:
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

    import uvicorn

    from app.main import create_app

    try:
        app = create_app(settings)
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
    uvicorn.Server(config).run()
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
