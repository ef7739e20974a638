"""Application factory and lifespan.

Startup order: the model's start-up job (app.startup) runs on threads, begun by ``python -m app`` before
this module is imported or else by the lifespan; the lifespan loads the MCP server beside it (app.mcp_mount).
/health answers at once; /ready says 503 with a reason until the model is loaded, warmed up and checked (and
run at its memory peak where the memory limit needs proof) and /mcp answers. Shutdown: the batcher stops, the
inference threads drain, the MCP session manager closes.

``uvicorn --factory app.main:create_app`` works too; ``python -m app`` is the usual way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.routing import Route

from app.admission import BodyBudget
from app.auth import KeyRing, RequireKey
from app.config import Settings
from app.errors import install_error_handlers
from app.logging import configure_logging
from app.mcp_mount import MCP_PATH, LazyMcp
from app.metrics import Metrics
from app.middleware import ObservabilityMiddleware
from app.routes import embeddings, openai_compat, ops
from app.service import EmbeddingService
from app.startup import Startup

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, started: Startup | None = None) -> FastAPI:
    """``started``: the model's start-up job, when the caller began it (``python -m app``)."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    metrics = Metrics()
    service = EmbeddingService(settings, metrics, started)
    mcp = LazyMcp(service)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mcp_task = asyncio.create_task(mcp.run(on_loaded=lambda server: setattr(app.state, "mcp", server)),
                                       name="mcp")
        loader = asyncio.create_task(service.start(gates=[("MCP server loading", mcp.loaded())]),
                                     name="model-loader")
        app.state.loader = loader
        try:
            yield
        finally:
            if not loader.done():
                loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loader
            await service.stop()
            await mcp.stop(mcp_task)
            log.info("stopped")

    # Swagger UI and ReDoc from the package's pinned bundles under /static-offline-docs, not from a CDN:
    # /docs and /redoc work on an air-gapped cluster.
    app = FastAPIOffline(
        title="embedder",
        summary="Sentence embeddings over HTTP, OpenAI-compatible, and MCP.",
        version="0.1.0",
        lifespan=lifespan,
        max_body_size=_max_body_size(settings),
    )
    app.state.settings = settings
    app.state.service = service
    app.state.metrics = metrics
    app.state.mcp = None  # the MCP server, once loaded (app.mcp_mount)
    install_error_handlers(app)
    app.include_router(ops.router)
    app.include_router(embeddings.router)
    app.include_router(openai_compat.router)
    app.router.routes.append(Route(MCP_PATH, endpoint=mcp))
    app.add_middleware(
        BodyBudget,
        max_bytes=settings.max_queued_bytes,
        max_body=_max_body_size(settings),
        on_reject=metrics.rejected.inc,
    )
    app.add_middleware(
        RequireKey,
        keys=KeyRing(settings.api_keys.get_secret_value(), settings.api_keys_file),
        open_metrics=not settings.metrics_require_key,
        on_reject=metrics.unauthorized.inc,
    )
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    return app


def _max_body_size(settings: Settings) -> int:
    """Room for max_inputs texts of max_text_chars (4 bytes a char, JSON escapes) + slack."""
    return settings.max_inputs * (settings.max_text_chars * 6 + 16) + (1 << 20)
