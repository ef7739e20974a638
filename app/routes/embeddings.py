"""The service's own API: /embed and /similarity."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import Response

from app.routes import get_service
from app.schemas import (
    EmbedRequest,
    EmbedResponse,
    ErrorResponse,
    SimilarityRequest,
    SimilarityResponse,
    json_response,
)
from app.service import EmbeddingService

router = APIRouter(tags=["embeddings"])
Service = Annotated[EmbeddingService, Depends(get_service)]

ERRORS = {
    400: {"model": ErrorResponse, "description": "Malformed JSON, unknown prompt_name"},
    413: {"model": ErrorResponse, "description": "Too many texts, a text too long"},
    422: {"model": ErrorResponse, "description": "Wrong types, empty input"},
    503: {"model": ErrorResponse, "description": "Model not ready yet"},
}


@router.post("/embed", response_model=EmbedResponse, responses=ERRORS, summary="Embed texts")
async def embed(body: EmbedRequest, service: Service) -> Response:
    single = isinstance(body.inputs, str)
    texts = [body.inputs] if single else body.inputs
    out = await service.embed(
        texts,
        normalize=body.normalize,
        truncate=body.truncate,
        field="inputs",
        single=single,
        prompt_name=body.prompt_name,
    )
    return json_response(
        {"model": service.info.repo, "dimensions": out.vectors.shape[1], "embeddings": out.vectors}
    )


@router.post(
    "/similarity",
    response_model=SimilarityResponse,
    responses=ERRORS,
    summary="Cosine similarity of one text to each of several",
)
async def similarity(body: SimilarityRequest, service: Service) -> Response:
    scores = await service.similarity(body.source, body.targets, truncate=body.truncate)
    return json_response({"model": service.info.repo, "scores": scores})
