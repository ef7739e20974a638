"""Prompts and normalization from embedding.json, on every route (own API, OpenAI, MCP).

all-MiniLM-L6-v2 defines no prompts; the other models here are copies of its directory whose
embedding.json declares prompts, a default prompt, or no Normalize module (tests/model_copies.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import httpx2
import numpy as np
import openai
import pytest_asyncio
from fastapi import FastAPI
from mcp import Client
from model_copies import model_copy
from svc_support import make_settings, running_app

from app.main import create_app
from app.schemas import EmbedResponse, OpenAIEmbeddingResponse, OpenAIModelList, ReadyResponse

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PROMPTS = {"query": "query: ", "passage": "passage: "}
TEXTS = ["A cat sits on the mat.", "Quarterly revenue grew by nine percent."]


@dataclass
class Served:
    app: FastAPI
    client: httpx.AsyncClient

    async def embed(self, inputs, **extra) -> np.ndarray:
        r = await self.client.post("/embed", json={"inputs": inputs, **extra})
        assert r.status_code == 200, r.text
        return np.asarray(EmbedResponse.model_validate(r.json()).embeddings)

    async def openai(self, inputs, **extra) -> httpx.Response:
        body = {"model": MODEL, "input": inputs, "encoding_format": "float", **extra}
        return await self.client.post("/v1/embeddings", json=body)

    async def mcp_embed(self, **arguments):
        async with Client(self.app.state.mcp) as c:  # in-process: the tool runs on this app's service
            return await c.call_tool("embed", arguments)


@contextlib.asynccontextmanager
async def _serve(model_dir, **settings) -> AsyncIterator[Served]:
    app = create_app(make_settings(model_dir, **settings))
    async with running_app(app) as client:
        yield Served(app, client)


@pytest_asyncio.fixture(scope="module")
async def minilm(asgi_app, client) -> Served:
    return Served(asgi_app, client)


@pytest_asyncio.fixture(scope="module")
async def prompted(model_dir, tmp_path_factory) -> AsyncIterator[Served]:
    async with _serve(model_copy(model_dir, tmp_path_factory.mktemp("prompted"), prompts=PROMPTS)) as served:
        yield served


@pytest_asyncio.fixture(scope="module")
async def defaulted(model_dir, tmp_path_factory) -> AsyncIterator[Served]:
    path = model_copy(model_dir, tmp_path_factory.mktemp("defaulted"), prompts=PROMPTS, default_prompt_name="query")
    async with _serve(path) as served:
        yield served


@pytest_asyncio.fixture(scope="module")
async def raw(model_dir, tmp_path_factory) -> AsyncIterator[Served]:
    async with _serve(model_copy(model_dir, tmp_path_factory.mktemp("raw"), normalize=False)) as served:
        yield served


# --- a model without prompts -------------------------------------------------------------------
async def test_minilm_refuses_any_prompt_name_on_every_route(minilm):
    r = await minilm.client.post("/embed", json={"inputs": TEXTS, "prompt_name": "query"})
    assert r.status_code == 400
    body = r.json()
    assert "defines no prompts" in body["detail"] and MODEL in body["detail"]
    assert (body["code"], body["param"]) == ("unknown_prompt", "prompt_name")
    r = await minilm.openai(TEXTS, prompt_name="query")
    assert r.status_code == 400 and "defines no prompts" in r.json()["error"]["message"]
    assert r.json()["error"]["param"] == "prompt_name"
    result = await minilm.mcp_embed(inputs=TEXTS, prompt_name="query")
    assert result.is_error and "defines no prompts" in result.content[0].text


async def test_minilm_describes_itself(minilm):
    ready = ReadyResponse.model_validate((await minilm.client.get("/ready")).json())
    assert (ready.model, ready.name, ready.dimensions, ready.max_seq_length) == (MODEL, "all-MiniLM-L6-v2", 384, 256)
    assert (ready.prompts, ready.default_prompt_name, ready.normalize) == ({}, None, True)
    (model,) = OpenAIModelList.model_validate((await minilm.client.get("/v1/models")).json()).data
    assert (model.id, model.name, model.dimensions, model.prompts, model.default_prompt_name) == (
        MODEL, "all-MiniLM-L6-v2", 384, {}, None,
    )


async def test_mcp_embed_tool_documents_prompt_name(minilm):
    async with Client(minilm.app.state.mcp) as c:
        (embed,) = [t for t in (await c.list_tools()).tools if t.name == "embed"]
    assert "prompt_name" in embed.input_schema["properties"] and "no prompts" in embed.description


# --- a model with prompts ----------------------------------------------------------------------
async def test_prompt_name_prepends_the_prompt(prompted):
    with_prompt = await prompted.embed(TEXTS, prompt_name="query")
    np.testing.assert_allclose(with_prompt, await prompted.embed([PROMPTS["query"] + t for t in TEXTS]), atol=1e-6)
    assert not np.allclose(with_prompt, await prompted.embed(TEXTS), atol=1e-3)
    assert not np.allclose(with_prompt, await prompted.embed(TEXTS, prompt_name="passage"), atol=1e-3)


async def test_openai_and_mcp_take_prompt_name(prompted):
    expected = await prompted.embed(TEXTS, prompt_name="query")
    r = await prompted.openai(TEXTS, prompt_name="query")
    assert r.status_code == 200, r.text
    body = OpenAIEmbeddingResponse.model_validate(r.json())
    np.testing.assert_allclose([d.embedding for d in body.data], expected, atol=1e-6)
    spelled_out = (await prompted.openai([PROMPTS["query"] + t for t in TEXTS])).json()["usage"]
    plain = (await prompted.openai(TEXTS)).json()["usage"]
    assert body.usage.prompt_tokens == spelled_out["prompt_tokens"] > plain["prompt_tokens"]  # prompt tokens count
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=prompted.app), base_url="http://testserver")
    async with openai.AsyncOpenAI(base_url="http://testserver/v1", api_key="-", http_client=http, max_retries=0) as oai:
        res = await oai.embeddings.create(model=MODEL, input=TEXTS, extra_body={"prompt_name": "query"})
    np.testing.assert_allclose([d.embedding for d in res.data], expected, atol=1e-6)
    result = await prompted.mcp_embed(inputs=TEXTS, prompt_name="query")
    assert not result.is_error, result
    np.testing.assert_allclose(result.structured_content["embeddings"], expected, atol=1e-6)


async def test_unknown_prompt_name_lists_the_valid_ones(prompted):
    r = await prompted.client.post("/embed", json={"inputs": TEXTS, "prompt_name": "document"})
    assert r.status_code == 400 and r.json()["code"] == "unknown_prompt"
    messages = [r.json()["detail"]]
    r = await prompted.openai(TEXTS, prompt_name="document")
    assert r.status_code == 400
    messages.append(r.json()["error"]["message"])
    result = await prompted.mcp_embed(inputs=TEXTS, prompt_name="document")
    assert result.is_error
    messages.append(result.content[0].text)
    for message in messages:
        assert "'document'" in message and "'query', 'passage'" in message


async def test_the_prompt_counts_toward_the_token_limit(prompted):
    text = "word " * 254  # 254 tokens + [CLS] + [SEP]: exactly the limit
    assert (await prompted.client.post("/embed", json={"inputs": text, "truncate": False})).status_code == 200
    r = await prompted.client.post("/embed", json={"inputs": text, "truncate": False, "prompt_name": "query"})
    assert r.status_code == 413 and "258 tokens long with its prompt 'query: '" in r.json()["detail"]


async def test_ready_and_models_list_the_prompts(prompted):
    ready = ReadyResponse.model_validate((await prompted.client.get("/ready")).json())
    assert (ready.prompts, ready.default_prompt_name, ready.dimensions) == (PROMPTS, None, 384)
    (model,) = OpenAIModelList.model_validate((await prompted.client.get("/v1/models")).json()).data
    assert (model.prompts, model.dimensions, model.max_seq_length) == (PROMPTS, 384, 256)


# --- a model with a default prompt -------------------------------------------------------------
async def test_the_default_prompt_applies_when_none_is_named(defaulted, prompted):
    ready = (await defaulted.client.get("/ready")).json()
    assert ready["default_prompt_name"] == "query"
    default = await defaulted.embed(TEXTS)
    np.testing.assert_allclose(default, await defaulted.embed(TEXTS, prompt_name="query"), atol=1e-6)
    np.testing.assert_allclose(default, await prompted.embed([PROMPTS["query"] + t for t in TEXTS]), atol=1e-6)
    assert not np.allclose(default, await defaulted.embed(TEXTS, prompt_name="passage"), atol=1e-3)
    r = await defaulted.client.post("/similarity", json={"source": TEXTS[0], "targets": TEXTS})
    np.testing.assert_allclose(r.json()["scores"], default @ default[0], atol=1e-5)


# --- a model without a Normalize module --------------------------------------------------------
async def test_a_model_without_normalize_returns_raw_vectors_by_default(raw, minilm):
    assert (await raw.client.get("/ready")).json()["normalize"] is False
    vectors = await raw.embed(TEXTS)
    np.testing.assert_allclose(vectors, await minilm.embed(TEXTS, normalize=False), atol=1e-6)
    assert np.all(np.abs(np.linalg.norm(vectors, axis=1) - 1) > 1e-3)
    unit = await raw.embed(TEXTS, normalize=True)
    np.testing.assert_allclose(unit, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), atol=1e-6)
    oai = (await raw.openai(TEXTS)).json()
    np.testing.assert_allclose([d["embedding"] for d in oai["data"]], vectors, atol=1e-6)
    result = await raw.mcp_embed(inputs=TEXTS)
    np.testing.assert_allclose(result.structured_content["embeddings"], vectors, atol=1e-6)
    r = await raw.client.post("/similarity", json={"source": TEXTS[0], "targets": TEXTS})
    np.testing.assert_allclose(r.json()["scores"], unit @ unit[0], atol=1e-5)  # always cosine


def test_cache_keys_tell_prompted_from_unprompted_text():
    """The prompt is part of the key: "a cat" with prompt "query: " never reads the vector of "a cat"."""
    from app.cache import EmbeddingCache
    from app.metrics import Metrics

    cache = EmbeddingCache(
        "redis://127.0.0.1:1/0", password=None, model="m", ttl_s=0, timeout_s=0.05, breaker_s=1, metrics=Metrics()
    )
    keys = [cache.key("a cat", p) for p in ("", "query: ", "passage: ")] + [cache.key("query: a cat")]
    assert len(set(keys)) == len(keys)
    assert keys[0] == cache.key("a cat", "") and keys[1] == cache.key("a cat", "query: ")
