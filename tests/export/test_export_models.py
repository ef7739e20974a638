"""The real export (app.export.build) on tiny random models of every supported shape, against
sentence-transformers in-process: fp32 within 1e-5, int8 min cosine >= 0.99, embedding.json as the model says."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch", reason="exporting needs torch: uv sync --group export")
pytest.importorskip("sentence_transformers", reason="exporting needs sentence-transformers: uv sync --group export")

import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from tiny_models import HIDDEN, Spec, save  # noqa: E402

from app.embedding_meta import EmbeddingMeta  # noqa: E402
from app.export import verify  # noqa: E402
from app.export.__main__ import main  # noqa: E402
from app.export.build import FP32, INT8, build  # noqa: E402
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


def export(spec: Spec, root, variants=("fp32", "int8")):
    """(snapshot, model directory, verification results) of spec, exported by the real build."""
    snapshot = save(spec, root / "snapshot")
    out = root / "model"
    results = build(snapshot, out, lock_directory(snapshot, "tiny/model", REVISION), variants)
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


def test_int8_close_to_sentence_transformers(built):
    name, _, _, out, results = built
    cos = results[INT8]["min_cosine"]
    print(f"{name}: int8 min cosine {cos:.6f}")
    assert cos >= 0.99 and results[FP32]["min_cosine"] >= 0.9999


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
    for rel in (FP32, INT8):
        session = ort.InferenceSession(str(out / rel), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == list(meta.inputs)
        assert [(o.name, o.shape[-1]) for o in session.get_outputs()] == [("sentence_embedding", meta.dimensions)]
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


def test_int8_miss_fails_with_its_figure_while_fp32_builds(tmp_path, capsys):
    """Large weights (initializer_range 3) make int8 activations drift (min cosine about 0.975 with
    ONNX Runtime's int8 MatMulNBits kernels): both variants fail naming the figure, fp32 alone builds."""
    snapshot = save(Spec(init_std=3.0), tmp_path / "snapshot")
    lock = lock_directory(snapshot, "tiny/model", REVISION)
    (tmp_path / "lock.json").write_text("")
    lock.write(tmp_path / "lock.json")
    args = ["build", "--lock", str(tmp_path / "lock.json"), "--snapshot", str(snapshot), "--out", str(tmp_path / "model")]
    assert main(args) == 3
    err = capsys.readouterr().err
    print(err.strip())
    assert "onnx/model_int8.onnx: min cosine 0.9" in err and "is below 0.99" in err, err
    assert not (tmp_path / "model").exists()

    assert main([*args, "--variant", "fp32"]) == 0
    checks = json.loads((tmp_path / "model" / LOCK_NAME).read_text())["verification"]
    assert list(checks) == [FP32] and checks[FP32]["min_cosine"] >= 0.9999
    assert not (tmp_path / "model" / INT8).exists()


def test_int8_variant_alone_keeps_only_the_int8_graph(tmp_path):
    _, out, results = export(Spec(), tmp_path, variants=("int8",))
    assert list(results) == [INT8] and results[INT8]["min_cosine"] >= 0.99
    assert (out / INT8).is_file() and not (out / FP32).exists()
    Lock.read(out / LOCK_NAME).verify(out)
    assert FP32 not in Lock.read(out / LOCK_NAME).files


def test_do_lower_case_is_carried_into_tokenizer_json(tmp_path):
    """sentence_bert_config.json's do_lower_case lowercases in sentence-transformers only: the exported
    tokenizer.json (all the service reads) gets the Lowercase, so fp32 still matches."""
    snapshot = save(Spec(), tmp_path / "snapshot")
    tok = json.loads((snapshot / "tokenizer.json").read_text())
    tok["normalizer"]["lowercase"] = False
    (snapshot / "tokenizer.json").write_text(json.dumps(tok))
    conf = json.loads((snapshot / "sentence_bert_config.json").read_text())
    (snapshot / "sentence_bert_config.json").write_text(json.dumps(conf | {"do_lower_case": True}))
    results = build(snapshot, tmp_path / "model", lock_directory(snapshot, "tiny/model", REVISION))
    assert results[FP32]["min_cosine"] >= 0.9999
    normalizer = json.loads((tmp_path / "model" / "tokenizer.json").read_text())["normalizer"]
    assert {"type": "Lowercase"} in normalizer["normalizers"]
