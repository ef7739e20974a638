"""HTTP routes, one module per concern."""

from fastapi import Request

from app.service import EmbeddingService


async def get_service(request: Request) -> EmbeddingService:
    return request.app.state.service
