"""Structured logs: one JSON object per line on stdout (python-json-logger).

Every logger (uvicorn's, the MCP SDK's, ours) propagates to the root handler set up
here; uvicorn's own access log is off, ``app.middleware`` writes a richer one.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

_MARK = "_embedder_json_handler"
#: Loggers whose handlers are dropped so their records reach our root handler once.
_PROPAGATE = ("uvicorn", "uvicorn.error", "uvicorn.access", "mcp", "httpx")


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",  # ISO 8601, UTC
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],  # uvicorn's ANSI copy of message
        json_ensure_ascii=False,
    )


def configure_logging(level: str = "info") -> None:
    """Install the JSON stdout handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(json_formatter())
    setattr(handler, _MARK, True)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in _PROPAGATE:
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
        lg.setLevel(logging.NOTSET)
    # The MCP SDK logs every request at INFO; keep those at WARNING unless debugging.
    if level.lower() != "debug":
        logging.getLogger("mcp").setLevel(logging.WARNING)
