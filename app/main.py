"""Application factory and lifespan.

Startup order: the lifespan starts the MCP session manager, then loads the model in
the background (so /health answers at once and /ready says 503 with a reason until
the model is loaded and one warm-up inference ran). Shutdown: the batcher stops,
the inference thread drains, the MCP session manager closes.

``uvicorn --factory app.main:create_app`` works too; ``python -m app`` is the usual way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from app.admission import BodyBudget
from app.auth import KeyRing, RequireKey
from app.config import Settings
from app.errors import install_error_handlers
from app.logging import configure_logging
from app.mcp_server import build_mcp
from app.metrics import Metrics
from app.middleware import ObservabilityMiddleware
from app.routes import embeddings, openai_compat, ops
from app.service import EmbeddingService

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level)
    metrics = Metrics()
    service = EmbeddingService(settings, metrics)
    mcp, mcp_route = build_mcp(service)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mcp.session_manager.run():
            loader = asyncio.create_task(service.start(), name="model-loader")
            app.state.loader = loader
            try:
                yield
            finally:
                if not loader.done():
                    loader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loader
                await service.stop()
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
    app.state.mcp = mcp
    install_error_handlers(app)
    app.include_router(ops.router)
    app.include_router(embeddings.router)
    app.include_router(openai_compat.router)
    app.router.routes.append(mcp_route)
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
