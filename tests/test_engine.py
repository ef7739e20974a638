"""Engines (app/engine/): the precision policy alone, then each engine and precision on the real model against
sentence-transformers' vectors (the model directory's reference.json), through the service's own model code."""

from __future__ import annotations

import logging

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from app.cache import model_key
from app.config import Settings
from app.engine.openvino import LONE_WIDTH_MULTIPLE
from app.engine.precision import PrecisionError, choose
from app.model import EmbeddingModel, lone_width
from app.service import normalize_rows

MIN_COSINE = 0.9999  # the accuracy contract of every default path


@pytest.mark.parametrize(("setting", "capabilities", "chosen"), [
    ("auto", ["FP32", "BF16", "INT8"], "bf16"),  # AVX512-BF16 or AMX
    ("auto", ["FP32", "INT8", "BIN"], "f32"),  # f32 asked for explicitly
    ("f32", ["FP32", "BF16"], "f32"),
    ("bf16", ["FP32", "BF16"], "bf16"),
])
def test_precision_policy(setting, capabilities, chosen):
    assert choose(setting, capabilities) == chosen


def test_explicit_bf16_without_native_bf16_is_an_error_naming_the_fix():
    with pytest.raises(PrecisionError, match=r"no native bf16 .*FP32, INT8.*set EMBEDDER_PRECISION=auto or f32"):
        choose("bf16", ["FP32", "INT8"])


def test_settings_refuse_what_an_engine_cannot_do(model_dir, monkeypatch):
    with pytest.raises(ValidationError, match="EMBEDDER_PRECISION=bf16 needs EMBEDDER_ENGINE=openvino"):
        Settings(model_dir=model_dir, engine="onnxruntime", precision="bf16")
    monkeypatch.setenv("EMBEDDER_ORT_SPINNING", "true")
    with pytest.raises(ValidationError, match="EMBEDDER_ORT_SPINNING: ONNX Runtime settings.*unset them"):
        Settings(model_dir=model_dir, engine="openvino")
    assert Settings(model_dir=model_dir, engine="onnxruntime").ort_spinning  # fine for ONNX Runtime


def test_engines_and_precisions_are_cached_apart_and_ort_f32_keys_are_unchanged():
    before = "56b6e8623d543657fa3ca2c7c2623dc0"  # model_key of these inputs before engines existed
    assert model_key("a" * 64, "b" * 64, 256) == model_key("a" * 64, "b" * 64, 256, "onnxruntime", "f32") == before
    keys = {model_key("a" * 64, "b" * 64, 256, engine, precision)
            for engine, precision in [("onnxruntime", "f32"), ("openvino", "f32"), ("openvino", "bf16")]}
    assert len(keys) == 3


@pytest.fixture(scope="module")
def reference(model_dir: Path) -> tuple[list[str], np.ndarray]:
    ref = json.loads((model_dir / "reference.json").read_text())
    return ref["sentences"], normalize_rows(np.asarray(ref["embeddings"], dtype=np.float32))


def embed(model: EmbeddingModel, texts: list[str]) -> np.ndarray:
    return normalize_rows(model.run(model.tokenize(texts).ids))


def cpu_bf16() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@pytest.mark.parametrize(("engine", "precision"), [("onnxruntime", "auto"), ("openvino", "f32"),
                                                   ("openvino", "auto")])
def test_each_engine_meets_the_accuracy_contract(model_dir, reference, engine, precision):
    pytest.importorskip(engine)
    model = EmbeddingModel(Settings(model_dir=model_dir, engine=engine, precision=precision))
    model.load()
    described = model.engine.describe()
    want = "bf16" if engine == "openvino" and precision == "auto" and cpu_bf16() else "f32"
    assert described["engine"] == engine and described.get("precision", "f32") == want, described
    sentences, expected = reference
    for got in (embed(model, sentences), np.concatenate([embed(model, [s]) for s in sentences])):
        cosine = np.sum(got * expected, axis=1)
        assert cosine.min() >= MIN_COSINE, (described, cosine)


def test_openvino_calls_from_several_threads_keep_to_their_own_results(model_dir, reference):
    pytest.importorskip("openvino")
    model = EmbeddingModel(Settings(model_dir=model_dir, engine="openvino"))
    model.load()
    sentences, _ = reference
    alone = {s: embed(model, [s])[0] for s in sentences}
    results: dict[int, list] = {}

    def worker(k: int) -> None:
        results[k] = [(s, embed(model, [s])[0]) for s in sentences[k:] + sentences[:k]]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for pairs in results.values():
        for sentence, vector in pairs:
            np.testing.assert_allclose(vector, alone[sentence], atol=1e-6)


async def test_ready_models_and_metrics_name_engine_precision_and_cpu(client):
    """/ready, /v1/models and /metrics say which engine serves, at which precision, on which CPU capabilities
    (the default engine here: OpenVINO)."""
    import openvino as ov

    capabilities = ",".join(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    ready = (await client.get("/ready")).json()["engine"]
    assert ready["engine"] == "openvino" and ready["cpu_capabilities"] == capabilities
    assert ready["precision"] == ("bf16" if "BF16" in capabilities else "f32")
    (listed,) = (await client.get("/v1/models")).json()["data"]
    assert listed["engine"] == {k: ready[k] for k in ("engine", "version", "precision", "cpu_capabilities")}
    metrics = (await client.get("/metrics")).text
    line = next(x for x in metrics.splitlines() if x.startswith("embedder_engine_info{"))
    assert f'engine="openvino"' in line and f'precision="{ready["precision"]}"' in line
    assert f'cpu_capabilities="{capabilities}"' in line


def test_the_capacity_log_line_names_the_engine(model_dir, caplog):
    from app.capacity import CostModel, log_capacity

    identity = {"engine": "openvino", "version": "v", "precision": "bf16", "cpu_capabilities": "BF16,FP32"}
    with caplog.at_level(logging.INFO, logger="app.capacity"):
        log_capacity(Settings(model_dir=model_dir), CostModel(1000.0, 10.0), 1.0, identity)
    (record,) = [r for r in caplog.records if r.getMessage() == "capacity"]
    assert {k: getattr(record, k) for k in identity} == identity


def test_a_call_alone_takes_the_wide_lane_and_calls_at_once_the_narrow_ones():
    from app.engine.openvino import Lanes

    lanes = Lanes(wide=True)
    first = lanes.pick()
    assert (first, lanes.pick(), lanes.pick()) == ("wide", "narrow", "narrow")  # side by side with the first
    lanes.done()  # a narrow call ends
    assert lanes.pick() == "narrow"  # the wide lane is still busy
    for _ in range(3):
        lanes.done()
    assert lanes.pick() == "wide" and lanes.calls == {"wide": 2, "narrow": 3}
    assert Lanes(wide=False).pick() == "narrow"  # one stream, or one CPU: one compiled model


@pytest.mark.parametrize("precision", ["f32", "auto"])
def test_both_openvino_lanes_meet_the_contract_and_agree(model_dir, reference, precision):
    """The wide lane (a call alone, every CPU) and the narrow ones (calls at once) compile the same graph at
    the same precision: each meets the contract, and they agree with each other."""
    pytest.importorskip("openvino")
    model = EmbeddingModel(Settings(model_dir=model_dir, engine="openvino", precision=precision))
    model.load()
    engine = model.engine
    if engine.describe()["wide_lane_threads"] is None:
        pytest.skip("one usable CPU: there is one lane")
    sentences, expected = reference

    def on(lane: str, texts: list[str]) -> np.ndarray:
        engine.run = lambda feed: engine.run_on(lane, feed)  # the model's own padding, on one lane
        try:
            return embed(model, texts)
        finally:
            del engine.run

    wide, narrow = on("wide", sentences), on("narrow", sentences)
    for got in (wide, narrow):
        assert np.sum(got * expected, axis=1).min() >= MIN_COSINE
    assert np.sum(wide * narrow, axis=1).min() >= 0.99999


def test_lone_width_rounds_up_to_the_multiple_and_never_past_the_limit():
    assert [lone_width(n, 16, 256) for n in (3, 16, 17, 32, 250, 256)] == [16, 16, 32, 32, 256, 256]
    assert lone_width(300, 16, 256) == 300  # already past the limit (a model without one): as it is
    assert [lone_width(n, 1, 256) for n in (3, 17)] == [3, 17]


@pytest.mark.parametrize(("engine", "width"), [("openvino", LONE_WIDTH_MULTIPLE), ("onnxruntime", 9)])
def test_a_lone_text_is_padded_to_its_engines_multiple_and_a_batch_to_its_longest(model_dir, engine, width):
    """OpenVINO prepares its graph again for every new shape: a lone text's call is rounded up (masked: the
    accuracy tests above embed each text alone, through this padding); ONNX Runtime takes any shape."""
    pytest.importorskip(engine)
    model = EmbeddingModel(Settings(model_dir=model_dir, engine=engine))
    model.load()
    lone = model.feed([[101] + [2000] * 7 + [102]])
    assert lone["input_ids"].shape == (1, width) and lone["attention_mask"].sum() == 9
    assert (lone["input_ids"][0, 9:] == model.meta.pad_token_id).all()
    assert model.feed([[101, 102], [101] + [2000] * 7 + [102]])["input_ids"].shape == (2, 9)
