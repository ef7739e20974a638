"""``/mcp``, with the MCP server (app.mcp_server) loaded off the start-up's critical path.

Importing the ``mcp`` SDK costs more than half a second of start-up (its package imports the client side
too), so the route exists from the start and the server is imported and built on a thread while the model
starts (app.startup), then its session manager runs in a task of its own. /ready waits for it
(``EmbeddingService.start``'s gates), so a 200 from /ready still means /mcp answers at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

if TYPE_CHECKING:
    from mcp.server import MCPServer

    from app.service import EmbeddingService

MCP_PATH = "/mcp"


class LazyMcp:
    """The ASGI app behind ``/mcp``; ``run`` loads the server and keeps its session manager running."""

    def __init__(self, service: EmbeddingService) -> None:
        self._service = service
        self.server: MCPServer | None = None
        self._asgi = None
        self._loaded: asyncio.Future[None] | None = None
        self._stop = asyncio.Event()

    def loaded(self) -> asyncio.Future[None]:
        """Done when the server answers (or failed to load); ``run`` must be running."""
        if self._loaded is None:
            self._loaded = asyncio.get_running_loop().create_future()
        return self._loaded

    async def run(self, on_loaded=lambda server: None) -> None:
        """Import and build the server on a thread, then run its session manager until ``stop``."""
        loaded = self.loaded()
        try:
            self.server, self._asgi = await asyncio.to_thread(_build, self._service)
            async with self.server.session_manager.run():
                on_loaded(self.server)
                loaded.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not loaded.done():
                loaded.set_exception(RuntimeError(f"MCP server failed to load: {type(exc).__name__}: {exc}"))
            raise

    async def stop(self, task: asyncio.Task) -> None:
        self._stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.shield(self.loaded())  # only before /ready: the server loads while the model does
        assert self._asgi is not None
        await self._asgi(scope, receive, send)


def _build(service: EmbeddingService):
    from app.mcp_server import build_mcp  # on this thread: the import is the slow part

    return build_mcp(service)
