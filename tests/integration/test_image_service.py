"""The built image, running as a service: readiness, reference embeddings, OpenAI and MCP clients, bad input."""

import json
import os
from pathlib import Path

import numpy as np
import openai
import pytest
from mcp import Client

from tests.test_errors import CASES, check_bad_input

# The model the pipeline built (its lock and metadata), not constants of all-MiniLM-L6-v2.
_DIR = Path(os.environ.get("EMBEDDER_TEST_MODEL_DIR", "."))
_LOCK = json.loads((_DIR / "model.lock.json").read_text()) if (_DIR / "model.lock.json").is_file() else {}
MODEL, REVISION = _LOCK.get("repo", ""), _LOCK.get("revision", "")
#: Min cosine against sentence-transformers that every served path meets (app.startcheck.CONTRACT).
CONTRACT = 0.9999
DIMENSIONS = json.loads((_DIR / "embedding.json").read_text())["dimensions"] if (_DIR / "embedding.json").is_file() else 0


async def test_health_and_ready_name_model_revision_and_engine(client):
    assert (await client.get("/health")).status_code == 200
    ready = await client.get("/ready")
    assert ready.status_code == 200, ready.text
    body = ready.json()
    assert (body["model"], body["revision"]) == (MODEL, REVISION)
    assert body["accuracy"]["min_cosine"] >= CONTRACT and body["accuracy"]["texts"] >= 10, body
    assert body["engine"]["engine"] == os.environ.get("EMBEDDER_EXPECT_ENGINE", "openvino"), body
    assert body["engine"]["precision"] == body["accuracy"]["precision"], body


async def test_embeddings_equal_the_sentence_transformers_reference(client, reference):
    r = await client.post("/embed", json={"inputs": reference["sentences"]})
    assert r.status_code == 200, r.text
    got, want = np.asarray(r.json()["embeddings"]), np.asarray(reference["embeddings"])
    assert got.shape == want.shape == (len(reference["sentences"]), DIMENSIONS)
    engine = (await client.get("/ready")).json()["engine"]
    if engine["engine"] == "onnxruntime":
        np.testing.assert_allclose(got, want, atol=1e-5)
    assert (got * want).sum(axis=1).min() >= CONTRACT


async def test_held_out_texts_meet_the_contract(client, reference):
    """The held-out set (app/export/heldout.json, in no test's own texts) at the image's engine and precision, in
    requests of 32 texts and one text at a time: min cosine >= 0.9999 (the README quotes the figure)."""
    held = reference["heldout"]
    texts, want = held["texts"], np.asarray(held["embeddings"])
    got = []
    for i in range(0, len(texts), 32):
        r = await client.post("/embed", json={"inputs": texts[i:i + 32]})
        assert r.status_code == 200, r.text
        got += r.json()["embeddings"]
    alone = [(await client.post("/embed", json={"inputs": t})).json()["embeddings"][0] for t in texts]
    engine = (await client.get("/ready")).json()["engine"]
    batched, single = (np.asarray(got) * want).sum(axis=1).min(), (np.asarray(alone) * want).sum(axis=1).min()
    print(f"\nheld-out min cosine, {engine['engine']} {engine['precision']}: {batched:.6f} in requests of 32, "
          f"{single:.6f} one at a time ({len(texts)} texts)")
    assert min(batched, single) >= CONTRACT


async def test_similarity_ranks_related_text_first(client):
    r = await client.post("/similarity", json={"source": "A cat sits on the mat.",
                                               "targets": ["Stock markets fell today.", "A kitten rests on a rug."]})
    assert r.status_code == 200, r.text
    low, high = r.json()["scores"]
    assert high > low


@pytest.mark.parametrize("encoding_format", [openai.NOT_GIVEN, "float"], ids=["client-default-base64", "float"])
async def test_openai_client(base_url, client, encoding_format):
    texts = ["The quick brown fox.", "Embeddings over HTTP."]
    async with openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0) as oa:
        result = await oa.embeddings.create(model=MODEL, input=texts, encoding_format=encoding_format)
    expected = (await client.post("/embed", json={"inputs": texts})).json()["embeddings"]
    np.testing.assert_allclose([d.embedding for d in result.data], expected, atol=1e-6)
    assert result.usage.prompt_tokens > 0 and result.model == MODEL


async def test_openai_client_unknown_model_is_a_clear_404(base_url):
    async with openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0) as oa:
        with pytest.raises(openai.NotFoundError, match=MODEL):
            await oa.embeddings.create(model="text-embedding-3-small", input="hi")


async def test_mcp_client_calls_both_tools(base_url):
    async with Client(f"{base_url}/mcp") as mcp:
        assert {"embed", "similarity"} <= {t.name for t in (await mcp.list_tools()).tools}
        embedded = await mcp.call_tool("embed", {"inputs": ["hello there"]})
        scored = await mcp.call_tool("similarity", {"source": "a dog", "targets": ["a puppy", "a tax form"]})
    assert not embedded.is_error and len(embedded.structured_content["embeddings"][0]) == DIMENSIONS
    assert not scored.is_error and scored.structured_content["scores"][0] > scored.structured_content["scores"][1]


@pytest.mark.parametrize(("path", "body", "status", "needles"), CASES)
async def test_bad_input_is_a_clear_4xx_and_the_service_stays_up(client, path, body, status, needles):
    await check_bad_input(client, path, body, status, needles)
    assert (await client.post("/embed", json={"inputs": "still serving"})).status_code == 200


async def test_metrics_count_requests_and_batches(client):
    await client.post("/embed", json={"inputs": ["count me"]})
    text = (await client.get("/metrics")).text
    assert "embedder_" in text and "/embed" in text
