"""The model directory contract: lock metadata, integrity check at load, the engine's graph."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from needs_export import need
from svc_support import lifespan_running, make_settings, running_app, wait_until_ready

from app.main import create_app
from app.model import ModelInfo


@pytest.fixture
def tampered_dir(model_dir, tmp_path):
    """The real model directory, symlinked file by file, with a tokenizer.json that differs
    (same size, still loadable: an unused vocabulary entry is renamed)."""
    for src in model_dir.rglob("*"):
        if src.is_file():
            dst = tmp_path / src.relative_to(model_dir)
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.name == "tokenizer.json":
                text = src.read_text()
                assert '"[unused0]"' in text
                dst.write_text(text.replace('"[unused0]"', '"[unusedX]"', 1))
            else:
                dst.symlink_to(src)
    return tmp_path


def test_info_from_lock(model_dir):
    info = ModelInfo.read(model_dir)
    lock = json.loads((model_dir / "model.lock.json").read_text())
    assert (info.repo, info.revision) == (lock["repo"], lock["revision"])
    assert info.name == "all-MiniLM-L6-v2" and info.max_seq_length == 256
    assert "onnx/model.onnx" in info.files


async def test_tampered_file_keeps_service_unready(tampered_dir):
    app = create_app(make_settings(tampered_dir))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c, lifespan_running(app):
        with pytest.raises(AssertionError, match="failed"):
            await wait_until_ready(c, timeout=30)
        r = await c.get("/ready")
        assert r.status_code == 503
        assert r.json()["status"] == "failed" and "tokenizer.json" in r.json()["reason"]
        assert "sha256" in r.json()["reason"]
        assert (await c.get("/health")).status_code == 200
        assert (await c.post("/embed", json={"inputs": "x"})).status_code == 503


async def test_verification_can_be_turned_off(tampered_dir):
    async with running_app(create_app(make_settings(tampered_dir, verify_model=False))) as c:
        r = await c.post("/embed", json={"inputs": "x"})
        assert r.status_code == 200


def test_a_directory_without_embedding_json_names_the_file_and_the_fix(model_dir, tmp_path):
    from model_copies import model_copy

    from app.config import Settings, describe_settings_error
    from app.model import ModelIntegrityError

    old = model_copy(model_dir, tmp_path)
    (old / "embedding.json").unlink()
    with pytest.raises(ValueError) as info:
        Settings(model_dir=old)
    message = describe_settings_error(info.value)
    assert "lacks embedding.json" in message and "dagger call model" in message
    with pytest.raises(ModelIntegrityError, match=r"embedding.json is missing.*dagger call model"):
        ModelInfo.read(old)
    (old / "embedding.json").write_text('{"format": 1, "dimensions": "384"}')
    with pytest.raises(ModelIntegrityError, match=r"embedding.json is invalid: .*dagger call model"):
        ModelInfo.read(old)


async def test_metadata_that_disagrees_with_the_graph_keeps_the_service_unready(model_dir, tmp_path):
    from model_copies import model_copy

    app = create_app(make_settings(model_copy(model_dir, tmp_path, dimensions=512)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c, lifespan_running(app):
        with pytest.raises(AssertionError, match="failed"):
            await wait_until_ready(c, timeout=30)
        reason = (await c.get("/ready")).json()["reason"]
    assert "outputs 384 dimensions, embedding.json says 512" in reason and "dagger call model" in reason


@pytest.mark.parametrize("engine", ["openvino", "onnxruntime"])
async def test_a_graph_without_token_type_ids_is_fed_only_its_inputs(model_dir, tmp_path, engine):
    """A non-BERT graph (no token_type_ids): the service feeds exactly embedding.json's inputs, on each engine."""
    need("onnx", "rewrites an ONNX graph")
    from model_copies import drop_token_type_ids, model_copy

    from app.export.openvino_ir import convert

    path = model_copy(model_dir, tmp_path, inputs=("input_ids", "attention_mask"), pad_token_id=7)
    drop_token_type_ids(path / "onnx" / "model.onnx")
    for name in ("openvino_model.xml", "openvino_model.bin"):
        (path / "openvino" / name).unlink()
    convert(path / "onnx" / "model.onnx", path / "openvino" / "openvino_model.xml")
    texts = ["short", "a much longer sentence, so that the short one is padded with id 7"]
    settings = {"engine": engine, "precision": "f32"}
    async with running_app(create_app(make_settings(path, verify_model=False, **settings))) as c:
        got = (await c.post("/embed", json={"inputs": texts})).json()["embeddings"]
    async with running_app(create_app(make_settings(model_dir, **settings))) as c:
        expected = (await c.post("/embed", json={"inputs": texts})).json()["embeddings"]
    np.testing.assert_allclose(got, expected, atol=1e-5)
