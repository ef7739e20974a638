"""The official `openai` client against /v1/embeddings (in-process and a real server)."""

from __future__ import annotations

import base64

import httpx2
import numpy as np
import openai
import pytest
import pytest_asyncio

from app.schemas import OpenAIEmbeddingResponse

TEXTS = ["The cat sits on the mat.", "Stock prices fell sharply today.", "¿Dónde está la biblioteca?"]
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@pytest_asyncio.fixture(scope="module")
async def oai(asgi_app):
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=asgi_app), base_url="http://testserver")
    async with openai.AsyncOpenAI(
        base_url="http://testserver/v1", api_key="unused", http_client=http, max_retries=0
    ) as client:
        yield client


async def _reference(client) -> np.ndarray:
    r = await client.post("/embed", json={"inputs": TEXTS})
    return np.asarray(r.json()["embeddings"])


async def test_default_base64(oai, client):
    res = await oai.embeddings.create(model=MODEL, input=TEXTS)  # client asks for base64
    assert res.object == "list" and res.model == MODEL
    assert [d.index for d in res.data] == [0, 1, 2]
    assert all(d.object == "embedding" and len(d.embedding) == 384 for d in res.data)
    np.testing.assert_allclose([d.embedding for d in res.data], await _reference(client), atol=1e-6)
    assert res.usage.prompt_tokens == res.usage.total_tokens > len(TEXTS) * 2


@pytest.mark.parametrize("model", [MODEL, "all-MiniLM-L6-v2"])
async def test_float_and_short_model_id(oai, client, model):
    res = await oai.embeddings.create(model=model, input=TEXTS[0], encoding_format="float")
    assert len(res.data) == 1 and res.model == MODEL
    np.testing.assert_allclose(res.data[0].embedding, (await _reference(client))[0], atol=1e-6)


async def test_raw_base64_is_little_endian_float32(client):
    body = {"model": MODEL, "input": TEXTS, "encoding_format": "base64"}
    r = await client.post("/v1/embeddings", json=body)
    assert r.status_code == 200
    parsed = OpenAIEmbeddingResponse.model_validate(r.json())
    vectors = [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in parsed.data]
    np.testing.assert_allclose(vectors, await _reference(client), atol=1e-6)
    raw = (await client.post("/v1/embeddings", json={**body, "encoding_format": "float"})).json()
    OpenAIEmbeddingResponse.model_validate(raw)
    np.testing.assert_array_equal(vectors, np.asarray([d["embedding"] for d in raw["data"]], "<f4"))


async def test_unknown_model_is_not_found_naming_the_served_one(oai):
    with pytest.raises(openai.NotFoundError) as info:
        await oai.embeddings.create(model="text-embedding-3-small", input="hi")
    assert MODEL in info.value.message
    assert info.value.body["code"] == "model_not_found"


async def test_empty_input_is_a_client_error(oai):
    with pytest.raises(openai.UnprocessableEntityError) as info:
        await oai.embeddings.create(model=MODEL, input=[])
    assert "at least one text" in info.value.message


async def test_models_list(oai):
    models = await oai.models.list()
    assert [m.id for m in models.data] == [MODEL]


def test_sync_client_against_real_server(server_url):
    with openai.OpenAI(base_url=f"{server_url}/v1", api_key="unused", max_retries=0) as c:
        b64 = c.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS)
        flt = c.embeddings.create(model="all-MiniLM-L6-v2", input=TEXTS, encoding_format="float")
    a = np.asarray([d.embedding for d in b64.data])
    assert a.shape == (3, 384)
    np.testing.assert_allclose(a, [d.embedding for d in flt.data], atol=1e-6)
