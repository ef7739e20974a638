"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import Response

from app.routes import get_service
from app.schemas import HealthResponse, ReadyResponse, json_response
from app.service import EmbeddingService

router = APIRouter(tags=["operations"])
Service = Annotated[EmbeddingService, Depends(get_service)]


@router.get("/health", response_model=HealthResponse, summary="Liveness: 200 while the process runs")
async def health() -> Response:
    return json_response({"status": "ok"})


@router.get(
    "/ready",
    response_model=ReadyResponse,
    summary="Readiness: 200 once the model is loaded and warmed up, else 503",
    responses={503: {"model": ReadyResponse, "description": "Not ready; `reason` says why."}},
)
async def ready(service: Service) -> Response:
    body = service.ready_body()
    headers = None if service.ready else {"Retry-After": "1"}
    return json_response(body, status_code=200 if service.ready else 503, headers=headers)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(service: Service) -> Response:
    m = service.metrics
    return Response(m.render(), media_type=m.content_type)
