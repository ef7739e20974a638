"""The README's quickstart against the built image: its curl request, its openai and LangChain snippets and its
MCP client configuration, sent as written; only localhost:8000 becomes the service under test (and the model
name the model it was built with, when that is not all-MiniLM-L6-v2). The service here runs without API keys,
so the key they send is accepted unchecked; tests/fleet checks keys on the image."""

import httpx2
import numpy as np
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.integration.test_image_service import DIMENSIONS, MODEL
from tests.quickstart import aimed_at, read

QUICK = read()


async def curl_vector(client) -> list[float]:
    """What the quickstart's curl request answers: the other three ways must give the same vector."""
    r = await client.post(QUICK.curl.path, json=QUICK.curl.body, headers=QUICK.curl.headers)
    assert r.status_code == 200, r.text
    (vector,) = r.json()["embeddings"]
    assert len(vector) == DIMENSIONS
    return vector


async def test_curl(client):
    await curl_vector(client)


def run_snippet(source: str, base_url: str) -> list[float]:
    namespace: dict = {}
    exec(aimed_at(source, base_url, MODEL), namespace)  # noqa: S102 - the README's own code
    return namespace["vector"]


async def test_openai_client(base_url, client):
    np.testing.assert_allclose(run_snippet(QUICK.openai, base_url), await curl_vector(client), atol=1e-6)


async def test_langchain_openai_embeddings(base_url, client):
    np.testing.assert_allclose(run_snippet(QUICK.langchain, base_url), await curl_vector(client), atol=1e-6)


async def test_mcp_client_configuration(base_url, client):
    http = httpx2.AsyncClient(headers=QUICK.mcp_headers, timeout=60)
    async with http, Client(streamable_http_client(aimed_at(QUICK.mcp_url, base_url, MODEL), http_client=http)) as mcp:
        assert {"embed", "similarity"} <= {t.name for t in (await mcp.list_tools()).tools}
        result = await mcp.call_tool("embed", {"inputs": [QUICK.curl.body["inputs"]]})
    assert not result.is_error
    np.testing.assert_allclose(result.structured_content["embeddings"][0], await curl_vector(client), atol=1e-6)
