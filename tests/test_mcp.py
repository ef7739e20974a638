"""The MCP SDK's own client over streamable HTTP, calling both tools on a real server."""

from __future__ import annotations

import numpy as np
import pytest
from mcp import Client

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def mcp_url(server_url: str) -> str:
    return f"{server_url}/mcp"


async def test_lists_both_tools(mcp_url):
    async with Client(mcp_url) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    assert {"embed", "similarity"} <= set(tools)
    assert "inputs" in tools["embed"].input_schema["properties"]
    assert {"source", "targets"} <= set(tools["similarity"].input_schema["properties"])


async def test_embed_tool_matches_http(mcp_url, server_url):
    import httpx

    texts = ["The cat sits on the mat.", "Quarterly revenue grew."]
    async with Client(mcp_url) as c:
        result = await c.call_tool("embed", {"inputs": texts})
    assert not result.is_error, result
    data = result.structured_content
    assert data["model"] == MODEL and data["dimensions"] == 384
    async with httpx.AsyncClient(base_url=server_url) as h:
        expected = (await h.post("/embed", json={"inputs": texts})).json()["embeddings"]
    np.testing.assert_allclose(data["embeddings"], expected, atol=1e-6)


async def test_similarity_tool(mcp_url):
    async with Client(mcp_url) as c:
        result = await c.call_tool(
            "similarity",
            {"source": "A cat sits on a mat.", "targets": ["A kitten on a rug.", "Tax law changes."]},
        )
    assert not result.is_error, result
    scores = result.structured_content["scores"]
    assert len(scores) == 2 and scores[0] > scores[1]


async def test_tool_errors_are_reported_not_fatal(mcp_url):
    async with Client(mcp_url) as c:
        bad = await c.call_tool("embed", {"inputs": []})
        assert bad.is_error
        assert "at least one text" in bad.content[0].text
        too_long = await c.call_tool("embed", {"inputs": "word " * 300, "truncate": False})
        assert too_long.is_error and "256 tokens" in too_long.content[0].text
        ok = await c.call_tool("embed", {"inputs": "still fine"})
        assert not ok.is_error and len(ok.structured_content["embeddings"][0]) == 384
