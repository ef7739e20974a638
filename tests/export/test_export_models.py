"""The real export (app.export.build) on tiny random models of every supported shape, against
sentence-transformers in-process: ONNX within 1e-5, OpenVINO IR (float16 weights where they hold the contract)
min cosine >= 0.9999 at f32, embedding.json as the model says."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="exporting needs torch: uv sync --group export")
pytest.importorskip("sentence_transformers", reason="exporting needs sentence-transformers: uv sync --group export")

import onnxruntime as ort  # noqa: E402
import openvino as ov  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from tiny_models import HIDDEN, Spec, save  # noqa: E402

from app.embedding_meta import EmbeddingMeta  # noqa: E402
from app.export import verify  # noqa: E402
from app.export.build import FP32, IR, build  # noqa: E402
from app.export.st_config import Unsupported  # noqa: E402
from app.lock import LOCK_NAME, Lock, lock_directory  # noqa: E402

REVISION = "0" * 40
BERT_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
CASES = {
    "bert-mean-normalize": Spec(),  # the shape of all-MiniLM-L6-v2
    "bert-cls-normalize": Spec(pooling="cls"),
    "bert-dense-tanh": Spec(dense=((16, torch.nn.Tanh()), (24, None)), normalize=False),
    "bert-max": Spec(pooling="max", normalize=False),
    "bert-lasttoken": Spec(pooling="lasttoken", max_seq_length=None),  # the limit from max_position_embeddings
    "bert-mean-sqrt-len": Spec(pooling="mean_sqrt_len_tokens", normalize=False),
    "bert-weightedmean": Spec(pooling="weightedmean", normalize=False),
    "roberta-mean": Spec(arch="roberta"),  # the tokenizer makes no token_type_ids; pad id 1
    "mpnet-mean": Spec(arch="mpnet"),  # the tokenizer makes token_type_ids, the model takes none
    "bert-prompts": Spec(prompts={"query": "query: ", "passage": "passage: "}, default_prompt_name="query"),
}


def export(spec: Spec, root):
    """(snapshot, model directory, verification results) of spec, exported by the real build."""
    snapshot = save(spec, root / "snapshot")
    out = root / "model"
    results = build(snapshot, out, lock_directory(snapshot, "tiny/model", REVISION))
    return snapshot, out, results


@pytest.fixture(scope="module", params=list(CASES))
def built(request, tmp_path_factory):
    spec = CASES[request.param]
    snapshot, out, results = export(spec, tmp_path_factory.mktemp(request.param))
    return request.param, spec, snapshot, out, results


def test_fp32_matches_sentence_transformers(built):
    """The graph's raw output (normalized only where the model ends with Normalize, as the service does)
    equals sentence-transformers' encode, batched and one text at a time."""
    name, spec, snapshot, out, _ = built
    meta = EmbeddingMeta.read(out)
    prompt = verify.default_prompt(meta)
    run = verify.runner(out / FP32, out / "tokenizer.json", meta)
    texts = [prompt + s for s in verify.SENTENCES]
    got = np.vstack([run(texts), *(run([t]) for t in texts)])
    if meta.normalize:
        got = got / np.linalg.norm(got, axis=1, keepdims=True)
    st = SentenceTransformer(str(snapshot), device="cpu")
    want = st.encode(verify.SENTENCES, prompt=prompt, normalize_embeddings=False, show_progress_bar=False)
    diff = float(np.abs(got - np.vstack([want, want])).max())
    print(f"{name}: fp32 max abs diff {diff:.2e}")
    assert diff <= 1e-5


def test_openvino_ir_matches_sentence_transformers(built):
    """The IR on OpenVINO at f32, fed as the service feeds it, on the check sentences and the held-out texts."""
    name, spec, snapshot, out, results = built
    meta = EmbeddingMeta.read(out)
    prompt = verify.default_prompt(meta)
    st = SentenceTransformer(str(snapshot), device="cpu")
    want = st.encode(verify.SENTENCES, prompt=prompt, normalize_embeddings=True, show_progress_bar=False)
    cos = verify.min_cosine(out / IR, out / "tokenizer.json", want, meta)
    print(f"{name}: OpenVINO IR ({results[IR]['weights']} weights) f32 min cosine {cos:.6f}, "
          f"held-out {results[IR]['heldout_min_cosine']:.6f}")
    assert cos >= 0.9999 and results[IR]["heldout_min_cosine"] >= 0.9999 and results[FP32]["min_cosine"] >= 0.9999


def test_embedding_json_describes_the_model(built):
    name, spec, snapshot, out, _ = built
    body = json.loads((out / "embedding.json").read_text())
    st_conf = json.loads((snapshot / "config_sentence_transformers.json").read_text())
    assert body == {
        "format": 1,
        "dimensions": spec.dense[-1][0] if spec.dense else HIDDEN,
        "pooling": spec.pooling,
        "dense_layers": len(spec.dense),
        "normalize": spec.normalize,
        "max_seq_length": spec.max_seq_length or 128,
        "inputs": BERT_INPUTS if spec.arch == "bert" else BERT_INPUTS[:2],
        "prompts": st_conf.get("prompts", {}),
        "default_prompt_name": spec.default_prompt_name,
        "pad_token_id": 1 if spec.arch == "roberta" else 0,
    }
    assert {k: body["prompts"][k] for k in spec.prompts} == spec.prompts
    assert EmbeddingMeta.read(out).to_dict() == body


def test_graph_takes_the_listed_inputs_and_the_directory_is_locked(built):
    _, spec, snapshot, out, _ = built
    meta = EmbeddingMeta.read(out)
    session = ort.InferenceSession(str(out / FP32), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(meta.inputs)
    assert [(o.name, o.shape[-1]) for o in session.get_outputs()] == [("sentence_embedding", meta.dimensions)]
    ir = ov.Core().read_model(str(out / IR))
    assert [i.get_any_name() for i in ir.inputs] == list(meta.inputs)
    assert [(o.get_any_name(), o.get_partial_shape()[-1].get_length()) for o in ir.outputs] == [
        ("sentence_embedding", meta.dimensions)]
    if spec.arch == "mpnet":  # left out by the forward signature, not by the tokenizer
        assert "token_type_ids" in json.loads((snapshot / "tokenizer_config.json").read_text())["model_input_names"]
    lock = Lock.read(out / LOCK_NAME)
    lock.verify(out)
    assert "embedding.json" in lock.files and not [f for f in lock.files if f.endswith(".safetensors")]
    reference = np.asarray(json.loads((out / "reference.json").read_text())["embeddings"])
    np.testing.assert_allclose(np.linalg.norm(reference, axis=1), 1.0, atol=1e-5)


def test_include_prompt_false_is_refused_naming_the_setting(tmp_path):
    snapshot = save(Spec(include_prompt=False), tmp_path / "snapshot")
    with pytest.raises(Unsupported, match='1_Pooling/config.json sets include_prompt: false.*"include_prompt": true'):
        build(snapshot, tmp_path / "model", lock_directory(snapshot, "tiny/model", REVISION))
    assert not (tmp_path / "model").exists()
