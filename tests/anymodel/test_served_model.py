"""A model other than all-MiniLM-L6-v2, built into the image and served: tests/export/tiny_models.py's SERVED
(RoBERTa-style without token_type_ids, CLS pooling, a Dense layer, no Normalize, prompts), its files taken
from disk and checked against their lock, exported and verified by the model stage.

`dagger call any-model-check` binds the image at EMBEDDER_BASE_URL and mounts the model stage's directory at
EMBEDDER_TEST_MODEL_DIR (embedding.json, reference.json: sentence-transformers' embeddings, normalized)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import numpy as np
import pytest

URL = os.environ.get("EMBEDDER_BASE_URL", "")
MODEL_DIR = Path(os.environ.get("EMBEDDER_TEST_MODEL_DIR", "."))
pytestmark = pytest.mark.skipif(not URL or not (MODEL_DIR / "embedding.json").is_file(),
                                reason="run by `dagger call any-model-check`")


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((MODEL_DIR / "embedding.json").read_text())


@pytest.fixture(scope="module")
def client():
    with httpx.Client(base_url=URL, timeout=60) as c:
        yield c


def unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_ready_names_the_model_its_dimensions_and_prompts(client, meta):
    body = client.get("/ready").json()
    lock = json.loads((MODEL_DIR / "model.lock.json").read_text())
    assert body["ready"] and (body["model"], body["revision"]) == (lock["repo"], lock["revision"])
    assert body["dimensions"] == meta["dimensions"] == 24
    assert body["prompts"] == meta["prompts"] and body["normalize"] is False
    models = client.get("/v1/models").json()["data"]
    assert [m["dimensions"] for m in models] == [24]


def test_vectors_match_sentence_transformers(client):
    reference = json.loads((MODEL_DIR / "reference.json").read_text())
    r = client.post("/embed", json={"inputs": reference["sentences"]})
    assert r.status_code == 200, r.text
    got = np.asarray(r.json()["embeddings"])
    assert got.shape == (len(reference["sentences"]), 24)
    # No Normalize module: the service returns the raw vectors; their directions are sentence-transformers'.
    assert not np.allclose(np.linalg.norm(got, axis=1), 1.0)
    want = np.asarray(reference["embeddings"])
    engine = client.get("/ready").json()["engine"]
    if engine["engine"] == "onnxruntime":
        np.testing.assert_allclose(unit(got), want, atol=1e-5)
    cosine = (unit(got) * want).sum(axis=1).min()
    print(f"\n{engine['engine']} {engine['precision']}: min cosine {cosine:.6f}")
    assert cosine >= 0.9999  # the contract, at the precision the start check let it serve


def test_prompt_name_prepends_the_models_prompt(client):
    text = "what is an embedding?"
    named = client.post("/embed", json={"inputs": [text], "prompt_name": "query"}).json()["embeddings"]
    by_hand = client.post("/embed", json={"inputs": [f"query: {text}"]}).json()["embeddings"]
    plain = client.post("/embed", json={"inputs": [text]}).json()["embeddings"]
    np.testing.assert_allclose(named, by_hand, atol=1e-6)
    assert not np.allclose(named, plain, atol=1e-3)
    repo = json.loads((MODEL_DIR / "model.lock.json").read_text())["repo"]
    openai_style = client.post("/v1/embeddings", json={"input": text, "model": repo, "prompt_name": "query"})
    assert openai_style.status_code == 200, openai_style.text
    np.testing.assert_allclose(openai_style.json()["data"][0]["embedding"], named[0], atol=1e-6)


def test_unknown_prompt_is_a_400_naming_the_valid_ones(client):
    r = client.post("/embed", json={"inputs": ["x"], "prompt_name": "summary"})
    assert r.status_code == 400, r.text
    assert "'query'" in r.text and "'passage'" in r.text
    assert client.get("/ready").json()["ready"], "the service stays up"
