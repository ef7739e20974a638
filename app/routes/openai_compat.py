"""OpenAI-compatible API: POST /v1/embeddings, GET /v1/models.

Errors use OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}``.
``encoding_format: "base64"`` (the official client's default) is base64 of the
little-endian float32 bytes of each vector.
"""

from __future__ import annotations

import base64
import time
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends
from starlette.responses import Response

from app.errors import ServiceError
from app.routes import get_service
from app.schemas import (
    OpenAIEmbeddingRequest,
    OpenAIEmbeddingResponse,
    OpenAIError,
    OpenAIModelList,
    json_response,
)
from app.service import EmbeddingService

router = APIRouter(prefix="/v1", tags=["openai"])
Service = Annotated[EmbeddingService, Depends(get_service)]
STARTED = int(time.time())

ERRORS = {
    code: {"model": OpenAIError, "description": desc}
    for code, desc in {
        400: "Malformed JSON, unsupported option or unknown prompt_name",
        404: "Unknown model",
        413: "Too many texts, a text too long",
        422: "Wrong types, empty input",
        503: "Model not ready yet",
    }.items()
}


@router.post(
    "/embeddings",
    response_model=OpenAIEmbeddingResponse,
    responses=ERRORS,
    summary="Create embeddings (OpenAI format)",
)
async def create_embeddings(body: OpenAIEmbeddingRequest, service: Service) -> Response:
    model = service.resolve_model(body.model)
    dims = service.model.dimensions
    if body.dimensions is not None and body.dimensions != dims:
        raise ServiceError(
            f"dimensions={body.dimensions} is not supported: {model} always returns {dims} "
            f"dimensions. Omit the parameter or send {dims}.",
            param="dimensions",
        )
    single = isinstance(body.input, str)
    texts = [body.input] if single else body.input
    out = await service.embed(
        texts, truncate=body.truncate, field="input", single=single, prompt_name=body.prompt_name
    )
    vectors = out.vectors
    if body.encoding_format == "base64":
        raw = vectors.astype("<f4", copy=False)
        items = [base64.b64encode(row.tobytes()).decode("ascii") for row in raw]
    else:
        items = list(np.ascontiguousarray(vectors))
    data = [{"object": "embedding", "index": i, "embedding": e} for i, e in enumerate(items)]
    return json_response(
        {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": out.tokens, "total_tokens": out.tokens},
        }
    )


@router.get(
    "/models",
    response_model=OpenAIModelList,
    summary="The served model (OpenAI format; extensions: name, dimensions, prompts, ...)",
)
async def list_models(service: Service) -> Response:
    info = service.info
    owner = info.repo.split("/", 1)[0] if "/" in info.repo else "embedder"
    model = {"id": info.repo, "object": "model", "created": STARTED, "owned_by": owner, **info.describe(),
             "engine": service.engine_identity()}
    return json_response({"object": "list", "data": [model]})
