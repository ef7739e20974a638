"""Pydantic models of every request and response body (they drive /openapi.json).

Handlers validate requests with these models. For speed, embedding responses are
written with orjson straight from numpy (``json_response``); their shape is exactly
the response model declared on the route, which the tests check.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import Response

_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY


def json_response(content: Any, status_code: int = 200, headers: dict | None = None) -> Response:
    """orjson-encoded JSON response; numpy arrays are written without a list detour."""
    return Response(
        orjson.dumps(content, option=_DUMPS_OPTS),
        status_code=status_code,
        headers=headers,
        media_type="application/json",
    )


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def check_texts(value: Any, field: str, *, many: bool = True) -> Any:
    """Type and emptiness checks with messages that name the field and the fix."""
    if isinstance(value, str):
        texts = [value]
    elif many and isinstance(value, list):
        if any(isinstance(t, int | list) and not isinstance(t, bool) for t in value):
            raise ValueError(f"{field} must be a string or a list of strings (token ids are not accepted)")
        bad = next((i for i, t in enumerate(value) if not isinstance(t, str)), None)
        if bad is not None:
            raise ValueError(f"{field}[{bad}] must be a string, got {_kind(value[bad])}")
        texts = value
    else:
        kind = "a string or a list of strings" if many else "a string"
        raise ValueError(f"{field} must be {kind}, got {_kind(value)}")
    if not texts:
        raise ValueError(f"{field} must contain at least one text")
    for i, text in enumerate(texts):
        if not text:
            where = field if isinstance(value, str) else f"{field}[{i}]"
            raise ValueError(f"{where} is an empty string; every text needs at least one character")
    return value


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _prompt_name() -> Any:
    return Field(
        None,
        min_length=1,
        description="Name of one of the model's prompts (GET /ready `prompts`), prepended to every text; "
        "unset = the model's default_prompt_name, if any.",
    )


class ModelDescription(BaseModel):
    """What the served model is (from its embedding.json): in /ready and, as extensions, /v1/models."""

    name: str = Field(description="Short name (the repository id without its owner).")
    dimensions: int = Field(description="Width of every embedding.")
    max_seq_length: int = Field(description="Most tokens the model sees per text, prompt included.")
    normalize: bool = Field(description="Whether embeddings are L2-normalized unless a request says otherwise.")
    prompts: dict[str, str] = Field(description="Prompt names accepted as prompt_name, and their text.")
    default_prompt_name: str | None = Field(description="Prompt applied when a request names none.")


# --- own API -----------------------------------------------------------------------------
class EmbedRequest(_Request):
    inputs: str | list[str] = Field(description="One text or a list of texts.")
    normalize: bool | None = Field(
        None, description="L2-normalize each embedding; unset = what the model does (GET /ready `normalize`)."
    )
    truncate: bool = Field(
        True, description="Cut texts longer than the model's token limit; false answers 413."
    )
    prompt_name: str | None = _prompt_name()

    @field_validator("inputs", mode="before")
    @classmethod
    def _texts(cls, v: Any) -> Any:
        return check_texts(v, "inputs")


class EmbedResponse(BaseModel):
    model: str
    dimensions: int
    embeddings: list[list[float]]


class SimilarityRequest(_Request):
    source: str = Field(description="The text compared against every target.")
    targets: list[str] = Field(description="Texts to score, in order.")
    truncate: bool = True

    @field_validator("source", mode="before")
    @classmethod
    def _source(cls, v: Any) -> Any:
        return check_texts(v, "source", many=False)

    @field_validator("targets", mode="before")
    @classmethod
    def _targets(cls, v: Any) -> Any:
        if isinstance(v, str):
            raise ValueError("targets must be a list of strings, got a single string")  # noqa: TRY004
        return check_texts(v, "targets")


class SimilarityResponse(BaseModel):
    model: str
    scores: list[float] = Field(description="Cosine similarity of source to each target.")


# --- OpenAI-compatible ---------------------------------------------------------------------
class OpenAIEmbeddingRequest(_Request):
    input: str | list[str]
    model: str
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None
    truncate: bool = Field(True, description="Extension: false answers 413 for over-long texts.")
    prompt_name: str | None = _prompt_name()

    @field_validator("input", mode="before")
    @classmethod
    def _texts(cls, v: Any) -> Any:
        return check_texts(v, "input")


class OpenAIEmbedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of little-endian float32.")


class OpenAIUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class OpenAIEmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIEmbedding]
    model: str
    usage: OpenAIUsage


class OpenAIModel(ModelDescription):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    engine: dict[str, str | bool] | None = Field(
        None, description="Engine, version, precision served and the CPU capabilities it uses; null until loaded."
    )


class OpenAIModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModel]


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIError(BaseModel):
    error: OpenAIErrorBody


# --- operations ------------------------------------------------------------------------------
class ErrorResponse(BaseModel):
    detail: str
    code: str
    param: str | None = None


class HealthResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyResponse(ModelDescription):
    status: Literal["ready", "starting", "loading", "failed", "draining", "stopping"]
    ready: bool
    reason: str | None = None
    model: str
    revision: str
    cache: Literal["off", "ok", "degraded"] = Field("off", description="Embedding cache state (docs/cache-and-keys.md).")
    engine: dict[str, str | int | bool] | None = Field(
        None, description="The inference engine once loaded: name, version, precision, threads (docs/settings.md)."
    )
    accuracy: dict[str, str | int | float] | None = Field(
        None, description="The start check: precision served, min cosine against sentence-transformers, texts."
    )
