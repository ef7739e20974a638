"""Memory sizing: the formula reads the model's own metadata and scales with the settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from svc_support import ROOT, make_settings

from app.sizing import ModelShape, activation_bytes_per_token, estimate


def test_shape_comes_from_the_model_directory(model_dir):
    shape = ModelShape.read(make_settings(model_dir))
    config = json.loads((model_dir / "config.json").read_text())
    assert (shape.hidden, shape.intermediate, shape.heads, shape.layers) == (
        config["hidden_size"],
        config["intermediate_size"],
        config["num_attention_heads"],
        config["num_hidden_layers"],
    )
    assert shape.max_seq_length == json.loads((model_dir / "embedding.json").read_text())["max_seq_length"]
    ir = model_dir / "openvino" / "openvino_model.xml"
    assert shape.graph_bytes == ir.stat().st_size + 2 * ir.with_suffix(".bin").stat().st_size  # f16 weights widen
    assert ModelShape.read(make_settings(model_dir, engine="onnxruntime")).graph_bytes == (
        model_dir / "onnx" / "model.onnx").stat().st_size


def test_another_model_shape_changes_the_estimate(model_dir, tmp_path):
    """A bigger model (as another sentence-transformers model would be) gets a bigger call term."""
    bigger = tmp_path / "model"
    shutil.copytree(model_dir, bigger, ignore=shutil.ignore_patterns("*.onnx"))
    (bigger / "onnx").mkdir(exist_ok=True)
    (bigger / "onnx" / "model.onnx").write_bytes(b"\0" * 1024)
    config = json.loads((bigger / "config.json").read_text())
    config |= {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12}
    (bigger / "config.json").write_text(json.dumps(config))
    small = ModelShape.read(make_settings(model_dir, engine="onnxruntime"))
    large = ModelShape.read(make_settings(bigger, engine="onnxruntime"))
    assert activation_bytes_per_token(large) > activation_bytes_per_token(small)
    assert large.graph_bytes == 1024


def test_other_architectures_and_external_weights(model_dir, tmp_path):
    """DistilBERT-style config keys are read; without config.json the width is embedding.json's; an ONNX
    file's external data counts as weights."""
    from model_copies import model_copy

    path = model_copy(model_dir, tmp_path / "m", dimensions=384, max_seq_length=512)
    (path / "config.json").unlink()
    (path / "config.json").write_text(json.dumps({"dim": 768, "hidden_dim": 3072, "n_heads": 12, "n_layers": 6}))
    shape = ModelShape.read(make_settings(path))
    assert (shape.hidden, shape.intermediate, shape.heads, shape.layers, shape.max_seq_length) == (768, 3072, 12, 6, 512)
    (path / "config.json").unlink()
    shape = ModelShape.read(make_settings(path))
    assert (shape.hidden, shape.intermediate, shape.heads) == (384, 4 * 384, 1)
    onnx = path / "onnx" / "model.onnx"
    (path / "onnx" / "model.onnx_data").write_bytes(b"\0" * 4096)
    assert ModelShape.read(make_settings(path, engine="onnxruntime")).graph_bytes == onnx.stat().st_size + 4096


def test_estimate_scales_with_the_settings(model_dir):
    shape = ModelShape.read(make_settings(model_dir))
    base = estimate(make_settings(model_dir, max_batch_tokens=1024, workers=3), shape)
    double = estimate(make_settings(model_dir, max_batch_tokens=2048, workers=3), shape)
    assert double.call_mb > base.call_mb
    per_token = activation_bytes_per_token(shape) / (1 << 20)
    assert abs(double.call_mb - base.call_mb - 3 * 1024 * per_token) < 1e-6  # every worker's call
    one = estimate(make_settings(model_dir, max_batch_tokens=1024, workers=1), shape)
    assert abs(base.call_mb - one.call_mb - 2 * 1024 * per_token) < 1e-6
    capped = estimate(make_settings(model_dir, max_batch=2, max_batch_tokens=8192), shape)
    assert capped.call_mb == estimate(make_settings(model_dir, max_batch=2, max_batch_tokens=512), shape).call_mb
    more = estimate(make_settings(model_dir, max_queued_bytes=64 << 20), shape)
    assert more.admitted_mb > estimate(make_settings(model_dir), shape).admitted_mb
    assert base.limit_mb % 64 == 0 and base.limit_mb >= base.peak_mb * 1.25


def test_cli_prints_the_estimate_for_the_environment(model_dir):
    env = {"PATH": os.environ["PATH"], "EMBEDDER_MODEL_DIR": str(model_dir), "EMBEDDER_MAX_BATCH_TOKENS": "1024"}
    out = subprocess.run(
        [sys.executable, "-m", "app.sizing", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout
    body = json.loads(out)
    assert body["settings"]["max_batch_tokens"] == 1024
    assert body["limit_mb"] >= body["peak_mb"] > body["call_mb"] > 0
    bad = subprocess.run(
        [sys.executable, "-m", "app.sizing"], cwd=ROOT, env=env | {"EMBEDDER_MAX_BATCH": "0"},
        capture_output=True, text=True, check=False,
    )
    assert bad.returncode == 2 and "EMBEDDER_MAX_BATCH" in bad.stderr


def test_a_memory_limit_below_the_estimate_is_named_with_the_fix(model_dir):
    from app.capacity import memory_warning

    settings = make_settings(model_dir)
    sized = estimate(settings, ModelShape.read(settings))
    assert memory_warning(float("nan"), sized) is None  # no limit
    assert memory_warning(sized.limit_mb * 2**20, sized) is None
    warning = memory_warning(400 * 2**20, sized)
    assert "400 MiB" in warning and f"give it {sized.limit_mb} MiB" in warning and "EMBEDDER_WORKERS" in warning
