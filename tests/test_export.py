"""The model stage's own checks: locks, failures that name what broke, and the built directory."""

import json
import shutil
import subprocess
import sys

import pytest

from app.export import GT_MODEL, lock_path
from app.lock import LOCK_NAME, Lock, LockMismatch

UPSTREAM = Lock.read(lock_path(*GT_MODEL))


def test_upstream_lock_pins_the_expected_revision_and_weights():
    assert UPSTREAM.repo == "sentence-transformers/all-MiniLM-L6-v2"
    assert UPSTREAM.revision == "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
    assert UPSTREAM.files["model.safetensors"]["sha256"].startswith("53aa5117")
    assert {"tokenizer.json", "modules.json", "1_Pooling/config.json"} <= set(UPSTREAM.files)


def test_gt_package_carries_the_locked_upstream_files(upstream_snapshot):
    UPSTREAM.verify(upstream_snapshot)


def test_model_directory_is_complete_and_locked(model_dir):
    lock = Lock.read(model_dir / LOCK_NAME)
    lock.verify(model_dir)
    assert (lock.repo, lock.revision) == (UPSTREAM.repo, UPSTREAM.revision)
    assert {"onnx/model.onnx", "openvino/openvino_model.xml", "openvino/openvino_model.bin", "tokenizer.json",
            "reference.json"} <= set(lock.files)
    assert "model.safetensors" not in lock.files
    checks = json.loads((model_dir / LOCK_NAME).read_text())["verification"]
    for graph in ("onnx/model.onnx", "openvino/openvino_model.xml"):
        assert min(checks[graph]["min_cosine"], checks[graph]["heldout_min_cosine"]) >= 0.9999, checks
    assert checks["openvino/openvino_model.xml"]["weights"] == "f16"


def test_a_changed_file_fails_the_lock_naming_it(upstream_snapshot, tmp_path):
    snap = tmp_path / "snap"
    shutil.copytree(upstream_snapshot, snap)
    (snap / "tokenizer_config.json").write_text("{}")
    with pytest.raises(LockMismatch, match="tokenizer_config.json"):
        UPSTREAM.verify(snap)
    run = subprocess.run(
        [sys.executable, "-m", "app.export", "build", "--lock", str(lock_path(*GT_MODEL)), "--snapshot", str(snap),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True,
    )
    assert run.returncode == 4
    assert "lock mismatch: tokenizer_config.json" in run.stderr
    assert not (tmp_path / "out").exists()


def test_a_missing_file_fails_the_lock_naming_it(upstream_snapshot, tmp_path):
    snap = tmp_path / "snap"
    shutil.copytree(upstream_snapshot, snap)
    (snap / "1_Pooling" / "config.json").unlink()
    with pytest.raises(LockMismatch, match="1_Pooling/config.json: missing"):
        UPSTREAM.verify(snap)


def test_an_unreachable_endpoint_fails_naming_endpoint_repo_and_revision(tmp_path):
    pytest.importorskip("huggingface_hub")
    run = subprocess.run(
        [sys.executable, "-m", "app.export", "download", "--lock", str(lock_path(*GT_MODEL)), "--out", str(tmp_path / "snap"),
         "--endpoint", "http://127.0.0.1:9", "--cache-dir", str(tmp_path / "hf")],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert f"{UPSTREAM.repo}@{UPSTREAM.revision} from http://127.0.0.1:9" in run.stderr
    assert not (tmp_path / "snap").exists()
