"""The HTTP API in-process (ASGI, lifespan running, real model)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from app.schemas import (
    EmbedResponse,
    HealthResponse,
    ReadyResponse,
    SimilarityResponse,
)

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
REVISION = "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"


async def test_health(client):
    r = await client.get("/health")
    assert r.status_code == 200
    HealthResponse.model_validate(r.json())


async def test_ready_names_model_and_revision(client):
    r = await client.get("/ready")
    assert r.status_code == 200
    body = ReadyResponse.model_validate(r.json())
    assert body.ready and body.status == "ready" and body.reason is None
    assert (body.model, body.revision) == (MODEL, REVISION)
    assert body.dimensions == 384 and body.max_seq_length == 256


async def test_embed_list(client):
    r = await client.post("/embed", json={"inputs": ["a cat", "a dog", "stock markets"]})
    assert r.status_code == 200, r.text
    body = EmbedResponse.model_validate(r.json())
    assert body.model == MODEL and body.dimensions == 384
    vectors = np.array(body.embeddings)
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


async def test_embed_single_string_gives_one_vector(client):
    one = (await client.post("/embed", json={"inputs": "hello world"})).json()
    listed = (await client.post("/embed", json={"inputs": ["hello world"]})).json()
    assert len(one["embeddings"]) == 1
    np.testing.assert_allclose(one["embeddings"], listed["embeddings"], atol=1e-6)


async def test_embed_without_normalize_is_raw_mean_pooling(client):
    raw = (await client.post("/embed", json={"inputs": ["hello world"], "normalize": False})).json()
    unit = (await client.post("/embed", json={"inputs": ["hello world"]})).json()
    v, u = np.array(raw["embeddings"][0]), np.array(unit["embeddings"][0])
    assert abs(np.linalg.norm(v) - 1.0) > 1e-3
    np.testing.assert_allclose(v / np.linalg.norm(v), u, atol=1e-6)


async def test_embed_does_not_depend_on_batch_company(client):
    """Padding to the batch's longest text must not change a text's embedding."""
    short = "tiny"
    long = "a much longer sentence that forces the batch to be padded well beyond the short one"
    alone = (await client.post("/embed", json={"inputs": [short]})).json()["embeddings"][0]
    mixed = (await client.post("/embed", json={"inputs": [long, short]})).json()["embeddings"][1]
    np.testing.assert_allclose(alone, mixed, atol=1e-5)


async def test_long_text_truncated_by_default(client):
    text = "word " * 600
    r = await client.post("/embed", json={"inputs": [text, text + "tail differs"]})
    assert r.status_code == 200
    a, b = r.json()["embeddings"]
    np.testing.assert_allclose(a, b, atol=1e-6)  # the tail is past token 256


async def test_similarity_scores_in_target_order(client):
    targets = ["The feline sat on the rug.", "Quarterly revenue grew 5%.", "A cat is sitting."]
    r = await client.post("/similarity", json={"source": "A cat sits on a mat.", "targets": targets})
    assert r.status_code == 200, r.text
    body = SimilarityResponse.model_validate(r.json())
    assert len(body.scores) == 3
    emb = (await client.post("/embed", json={"inputs": ["A cat sits on a mat.", *targets]})).json()
    v = np.array(emb["embeddings"])
    np.testing.assert_allclose(body.scores, v[1:] @ v[0], atol=1e-5)
    assert body.scores[1] < min(body.scores[0], body.scores[2])


async def test_concurrent_requests_each_get_their_own_vectors(client):
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(40)]
    expected = (await client.post("/embed", json={"inputs": texts})).json()["embeddings"]
    responses = await asyncio.gather(*(client.post("/embed", json={"inputs": t}) for t in texts))
    got = [r.json()["embeddings"][0] for r in responses]
    np.testing.assert_allclose(got, expected, atol=1e-5)


async def test_more_texts_than_max_batch_keep_their_order(client):
    texts = [("x " * (i % 50)) + f"item {i}" for i in range(100)]  # varied lengths, > max_batch
    big = (await client.post("/embed", json={"inputs": texts})).json()["embeddings"]
    some = [0, 31, 32, 63, 99]
    each = np.array((await client.post("/embed", json={"inputs": [texts[i] for i in some]})).json()["embeddings"])
    # Each text's own vector, in order. Not to 1e-5: how the scheduler groups these texts depends on the call
    # overhead it measured, and at bf16 a ~50-token text padded to another width (a lone text: to a multiple of
    # 16) moves by up to ~3e-4; the nearest of these texts to another is far below this cosine.
    cosine = np.array([big[i] for i in some]) @ each.T
    assert (cosine.argmax(axis=1) == np.arange(len(some))).all() and cosine.diagonal().min() >= 0.99999, cosine


async def test_metrics_exposed(client):
    await client.post("/embed", json={"inputs": ["metrics please"]})
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'embedder_http_requests_total{method="POST",route="/embed",status="200"}' in text
    for name in (
        "embedder_http_request_duration_seconds_bucket",
        "embedder_batch_size_bucket",
        "embedder_inference_seconds_bucket",
        "embedder_ready 1.0",
    ):
        assert name in text


@pytest.mark.parametrize("path", ["/embed", "/similarity", "/v1/embeddings", "/health", "/ready"])
async def test_openapi_documents_routes(client, path):
    spec = (await client.get("/openapi.json")).json()
    assert path in spec["paths"]
