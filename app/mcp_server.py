"""MCP server (official `mcp` SDK): tools ``embed`` and ``similarity`` over streamable HTTP.

Served at ``/mcp`` by app.mcp_mount, which imports this module off the start-up's critical path; stateless with JSON responses, so every tool
call is one POST and nothing long-lived blocks a graceful shutdown. The tools go
through the same ``EmbeddingService`` (limits, batcher) as the HTTP routes. The
session manager runs in a task of app.mcp_mount's.
"""

from __future__ import annotations

from typing import Annotated

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from pydantic import BaseModel, Field

from app.embedding_meta import EmbeddingMeta
from app.errors import ServiceError
from app.mcp_mount import MCP_PATH
from app.schemas import check_texts
from app.service import EmbeddingService


class EmbedToolResult(BaseModel):
    model: str
    dimensions: int
    embeddings: list[list[float]]


class SimilarityToolResult(BaseModel):
    model: str
    scores: list[float] = Field(description="Cosine similarity of source to each target, in order.")


def _texts(value: object, field: str) -> list[str]:
    try:
        check_texts(value, field)
    except ValueError as exc:
        raise ToolError(str(exc)) from exc
    return [value] if isinstance(value, str) else list(value)  # type: ignore[arg-type]


def _prompts_note(meta: EmbeddingMeta) -> str:
    """One sentence on the model's prompts, for the instructions and the embed tool."""
    if not meta.prompts:
        return "The model defines no prompts. "
    names = ", ".join(repr(n) for n in meta.prompts)
    default = f"; {meta.default_prompt_name!r} applies when none is named" if meta.default_prompt_name else ""
    return f"Prompts (embed's prompt_name): {names}{default}. "


def build_mcp(service: EmbeddingService) -> tuple[MCPServer, StreamableHTTPASGIApp]:
    """The MCP server and the ASGI app that serves it at ``/mcp`` (its session manager not yet run)."""
    info, meta = service.info, service.info.meta
    prompts = _prompts_note(meta)
    mcp = MCPServer(
        name="embedder",
        title="Sentence embeddings",
        instructions=(
            f"Embeds text with {info.repo} (revision {info.revision[:12]}, "
            f"{meta.dimensions} dimensions). {prompts}"
            "Use `similarity` to rank texts against a query, `embed` for raw vectors."
        ),
        log_level=service.settings.log_level.upper(),  # type: ignore[arg-type]
    )

    @mcp.tool(
        name="embed",
        description=(
            f"Embed one text or a list of texts with {info.repo}. Returns one vector per text "
            f"({'L2-normalized' if meta.normalize else 'not normalized'} unless normalize says otherwise). "
            + prompts
        ),
    )
    async def embed(
        inputs: Annotated[str | list[str], Field(description="A text or a list of texts.")],
        normalize: Annotated[
            bool | None, Field(description="L2-normalize each vector; unset = what the model does.")
        ] = None,
        truncate: bool = True,
        prompt_name: Annotated[
            str | None, Field(description="One of the model's prompts, prepended to every text.")
        ] = None,
    ) -> EmbedToolResult:
        texts = _texts(inputs, "inputs")
        try:
            out = await service.embed(
                texts,
                normalize=normalize,
                truncate=truncate,
                field="inputs",
                single=isinstance(inputs, str),
                prompt_name=prompt_name,
            )
        except ServiceError as exc:
            raise ToolError(exc.message) from exc
        return EmbedToolResult(
            model=info.repo, dimensions=int(out.vectors.shape[1]), embeddings=out.vectors.tolist()
        )

    @mcp.tool(
        name="similarity",
        description="Cosine similarity between a source text and each target text, in order.",
    )
    async def similarity(
        source: Annotated[str, Field(description="The text to compare.")],
        targets: Annotated[list[str], Field(description="Texts to score against the source.")],
        truncate: bool = True,
    ) -> SimilarityToolResult:
        _texts(source, "source")
        _texts(targets, "targets")
        try:
            scores = await service.similarity(source, targets, truncate=truncate)
        except ServiceError as exc:
            raise ToolError(exc.message) from exc
        return SimilarityToolResult(model=info.repo, scores=scores)

    mcp.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=True,
        host=service.settings.host,
    )
    return mcp, StreamableHTTPASGIApp(mcp.session_manager)
