"""Settings: EMBEDDER_ environment, defaults, and clear failures."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.config import REQUIRED_FILES, Settings, describe_settings_error
from app.cpus import cpu_budget


@pytest.fixture
def env(monkeypatch, model_dir):
    for name in list(__import__("os").environ):
        if name.startswith("EMBEDDER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("EMBEDDER_MODEL_DIR", str(model_dir))
    return monkeypatch


def test_defaults(env, model_dir):
    s = Settings()
    assert (s.host, s.port, s.max_batch, s.max_inputs) == ("0.0.0.0", 8000, 32, 256)
    assert (s.max_text_chars, s.intra_op_threads, s.inter_op_threads, s.log_level) == (8192, 1, 1, "info")
    assert s.workers == 0 and s.call_workers == cpu_budget().cpus + 1  # one call per CPU, plus one
    assert s.call_overhead_tokens is None  # measured after /ready
    assert 0 < s.max_wait_ms <= 10
    assert s.engine == "openvino" and s.precision == "auto"
    assert s.model_dir == model_dir and s.graph_path == model_dir / "openvino/openvino_model.xml"
    assert s.graph_files == ["openvino/openvino_model.xml", "openvino/openvino_model.bin"]


def test_environment_overrides(env, model_dir):
    env.setenv("EMBEDDER_PORT", "9001")
    env.setenv("EMBEDDER_ENGINE", "ONNXRuntime")  # case-insensitive
    env.setenv("EMBEDDER_MAX_WAIT_MS", "0.5")
    env.setenv("EMBEDDER_LOG_LEVEL", "WARNING")
    env.setenv("EMBEDDER_WORKERS", "5")
    s = Settings()
    assert s.call_workers == 5
    assert (s.port, s.engine, s.max_wait_ms, s.log_level) == (9001, "onnxruntime", 0.5, "warning")
    assert s.graph_path == model_dir / "onnx/model.onnx" and s.graph_files == ["onnx/model.onnx"]


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("EMBEDDER_PORT", "70000", "less than or equal to 65535"),
        ("EMBEDDER_VARIANT", "int8", "the int8 variant was removed"),
        ("EMBEDDER_ENGINE", "tensorrt", "'openvino' or 'onnxruntime'"),
        ("EMBEDDER_MAX_INPUTS", "0", "greater than or equal to 1"),
        ("EMBEDDER_MAX_WAIT_MS", "-1", "greater than or equal to 0"),
        ("EMBEDDER_INTRA_OP_THREADS", "many", "valid integer"),
        ("EMBEDDER_LOG_LEVEL", "loud", "'debug'"),
    ],
)
def test_invalid_values_name_the_variable(env, name, value, needle):
    env.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    message = describe_settings_error(info.value)
    assert name in message and needle in message, message


def test_missing_model_dir(env, tmp_path):
    env.setenv("EMBEDDER_MODEL_DIR", str(tmp_path / "nope"))
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "is not a directory" in describe_settings_error(info.value)


def test_model_dir_without_the_engines_graph(env, tmp_path, model_dir):
    for name in REQUIRED_FILES:
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    env.setenv("EMBEDDER_MODEL_DIR", str(tmp_path))
    with pytest.raises(ValidationError) as info:
        Settings()
    message = describe_settings_error(info.value)
    assert "openvino/openvino_model.xml, openvino/openvino_model.bin" in message, message
    assert "EMBEDDER_ENGINE=openvino" in message


def test_secrets_are_never_echoed(env):
    env.setenv("EMBEDDER_CACHE_URL", "http://user:hunter2@redis:6379")
    with pytest.raises(Exception) as info:
        Settings()
    message = describe_settings_error(info.value)
    assert "EMBEDDER_CACHE_URL" in message and "rediss://" in message and "hunter2" not in message
    env.setenv("EMBEDDER_CACHE_URL", "redis://:hunter2@redis:6379")
    env.setenv("EMBEDDER_API_KEYS", "sk-secret")
    s = Settings()
    assert "hunter2" not in repr(s) and "sk-secret" not in repr(s)


def test_cache_password_file(env, tmp_path):
    secret = tmp_path / "redis-password"
    secret.write_text("s3cret-from-file\n")
    env.setenv("EMBEDDER_CACHE_PASSWORD_FILE", str(secret))
    assert Settings().redis_password == "s3cret-from-file"  # the mounted Secret's trailing newline is not part of it


@pytest.mark.parametrize(
    ("content", "also_env", "needle"),
    [(None, False, "cannot be read"), ("\n", False, "is empty"), ("pw", True, "not both")],
)
def test_cache_password_file_errors_name_the_fix(env, tmp_path, content, also_env, needle):
    secret = tmp_path / "redis-password"
    if content is not None:
        secret.write_text(content)
    env.setenv("EMBEDDER_CACHE_PASSWORD_FILE", str(secret))
    if also_env:
        env.setenv("EMBEDDER_CACHE_PASSWORD", "pw2")
    with pytest.raises(ValidationError) as info:
        Settings()
    message = describe_settings_error(info.value)
    assert needle in message and "pw2" not in message, message
