"""Model locks: the file-selection policy, locking files on disk, and the model stage refusing what the lock
does not hold (`python -m app.export lock --dir` / `local`)."""

import json
import shutil
import subprocess
import sys

import pytest

from app.export import GT_MODEL, lock_path
from app.export.locking import LockRefused, lock_local, select
from app.lock import Lock

HUB_LISTING = [  # all-MiniLM-L6-v2's files on the hub at the pinned revision
    ".gitattributes", "1_Pooling/config.json", "README.md", "config.json", "config_sentence_transformers.json",
    "data_config.json", "model.safetensors", "modules.json", "onnx/model.onnx", "onnx/model_O1.onnx",
    "openvino/openvino_model.xml", "openvino/openvino_model.bin", "pytorch_model.bin", "rust_model.ot",
    "sentence_bert_config.json", "special_tokens_map.json", "tf_model.h5", "tokenizer.json",
    "tokenizer_config.json", "train_script.py", "vocab.txt",
]


def test_policy_keeps_configs_tokenizer_card_and_safetensors_only():
    assert select(HUB_LISTING) == sorted(Lock.read(lock_path(*GT_MODEL)).files)


def test_pickles_only_where_there_are_no_safetensors():
    chosen = select(["modules.json", "pytorch_model.bin", "2_Dense/config.json", "2_Dense/pytorch_model.bin",
                     "2_Dense/model.safetensors"])
    assert chosen == ["2_Dense/config.json", "2_Dense/model.safetensors", "modules.json", "pytorch_model.bin"]


@pytest.mark.parametrize(("names", "says"), [
    (["config.json", "model.safetensors"], "no modules.json"),
    (["modules.json", "config.json", "onnx/model.onnx"], "no PyTorch weights"),
])
def test_what_cannot_be_exported_is_refused_naming_why(names, says):
    with pytest.raises(LockRefused, match=says):
        select(names)


def test_committed_lock_records_license_and_policy():
    body = json.loads(lock_path(*GT_MODEL).read_text())
    assert (body["repo"], body["revision"]) == GT_MODEL
    assert body["license"] == "apache-2.0" and "weights" in body["policy"]


def test_a_lock_of_files_on_disk_is_the_committed_lock(upstream_snapshot):
    made = lock_local(upstream_snapshot, *GT_MODEL)
    assert made.files == Lock.read(lock_path(*GT_MODEL)).files


def test_local_files_are_checked_like_a_download(upstream_snapshot, tmp_path):
    snap = tmp_path / "mine"
    shutil.copytree(upstream_snapshot, snap)
    lock = str(lock_path(*GT_MODEL))
    ok = subprocess.run([sys.executable, "-m", "app.export", "local", "--lock", lock, "--dir", str(snap),
                         "--out", str(tmp_path / "ok")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert sorted(p.relative_to(tmp_path / "ok").as_posix() for p in (tmp_path / "ok").rglob("*") if p.is_file()) \
        == sorted(Lock.read(lock_path(*GT_MODEL)).files)
    (snap / "vocab.txt").write_text("changed\n")
    bad = subprocess.run([sys.executable, "-m", "app.export", "local", "--lock", lock, "--dir", str(snap),
                          "--out", str(tmp_path / "bad")], capture_output=True, text=True)
    assert bad.returncode == 4 and "lock mismatch: vocab.txt" in bad.stderr, bad.stderr
    assert not (tmp_path / "bad").exists()


def test_lock_command_writes_a_reviewable_lock_for_files_on_disk(upstream_snapshot, tmp_path):
    out = tmp_path / "lock.json"
    run = subprocess.run([sys.executable, "-m", "app.export", "lock", "--repo", GT_MODEL[0], "--revision",
                          GT_MODEL[1], "--dir", str(upstream_snapshot), "--out", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert f"models/{GT_MODEL[0]}/{GT_MODEL[1]}.json" in run.stdout
    assert json.loads(out.read_text()) == json.loads(lock_path(*GT_MODEL).read_text())
