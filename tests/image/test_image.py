"""Checks of the built image: its config (from the OCI tarball) and its filesystem (the image's rootfs).

The pipeline's `image-checks` mounts both and sets IMAGE_TARBALL, IMAGE_ROOTFS and IMAGE_SIZE_BUDGET_MB.
"""

import json
import os
import tarfile
from pathlib import Path

import pytest

TARBALL, ROOTFS = os.environ.get("IMAGE_TARBALL"), os.environ.get("IMAGE_ROOTFS")
pytestmark = pytest.mark.skipif(not (TARBALL and ROOTFS), reason="needs the built image (dagger call image-checks)")

COMPILERS = ["gcc", "cc", "g++", "c++", "clang", "tcc", "x86_64-linux-gnu-gcc", "ld", "as", "make"]
FORBIDDEN_PACKAGES = ("torch", "nvidia", "triton", "sentence_transformers", "transformers")
LABELS = ["title", "source", "revision", "version", "created"]


@pytest.fixture(scope="module")
def config() -> dict:
    with tarfile.open(TARBALL) as tar:
        def blob(digest: str) -> dict:
            return json.load(tar.extractfile(f"blobs/{digest.replace(':', '/')}"))

        node = json.load(tar.extractfile("index.json"))
        while "manifests" in node:  # index -> (index ->) manifest
            node = blob(node["manifests"][0]["digest"])
        return blob(node["config"]["digest"])["config"]


@pytest.fixture(scope="module")
def env(config) -> dict:
    return dict(item.split("=", 1) for item in config["Env"])


@pytest.fixture(scope="module")
def rootfs() -> Path:
    return Path(ROOTFS)


def test_runs_as_uid_1000(config, rootfs):
    assert config["User"] == "1000:1000"
    assert "1000:1000" in (rootfs / "etc/passwd").read_text()


def test_healthcheck_probes_ready(config):
    check = config["Healthcheck"]
    assert check["Test"][:1] == ["CMD"] and "app.healthcheck" in check["Test"]
    assert check["Interval"] > 0 and check["Retries"] >= 1


def test_entrypoint_port_and_env(config, env):
    assert config["Entrypoint"] == ["python", "-m", "app"]
    assert "8000/tcp" in config["ExposedPorts"]
    assert env["EMBEDDER_PORT"] == "8000"
    assert env["EMBEDDER_VARIANT"] in ("fp32", "int8")
    assert env["EMBEDDER_MODEL_DIR"].endswith("/c9745ed1d9f207416be6d2e6f8de32d1f16199bf")


def test_oci_labels(config):
    labels = config["Labels"]
    for name in LABELS:
        assert labels.get(f"org.opencontainers.image.{name}"), f"label org.opencontainers.image.{name} missing"
    assert len(labels["org.opencontainers.image.revision"]) == 40
    assert labels["io.embedder.model.revision"] == "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"


def test_model_directory_is_in_the_image(env, rootfs):
    model = rootfs / env["EMBEDDER_MODEL_DIR"].lstrip("/")
    lock = json.loads((model / "model.lock.json").read_text())
    onnx = "onnx/model.onnx" if env["EMBEDDER_VARIANT"] == "fp32" else "onnx/model_int8.onnx"
    assert (model / onnx).stat().st_size == lock["files"][onnx]["size"]
    assert (model / "tokenizer.json").is_file()


def test_no_compiler(rootfs):
    found = [
        str(d / name) for d in (rootfs / "usr/bin", rootfs / "usr/local/bin", rootfs / "bin") for name in COMPILERS
        if (d / name).exists()
    ]
    assert not found, f"compilers or build tools in the image: {found}"


def test_no_torch_nvidia_or_triton(rootfs):
    found = [
        str(p.relative_to(rootfs)) for site in rootfs.glob("**/site-packages") for p in site.iterdir()
        if p.name.lower().startswith(FORBIDDEN_PACKAGES)
    ]
    assert not found, f"training/GPU packages in the image: {found}"


def test_size_under_budget(rootfs):
    budget = int(os.environ["IMAGE_SIZE_BUDGET_MB"])
    seen, total = set(), 0
    for dirpath, _, files in os.walk(rootfs):
        for name in files:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    size_mb = total / 1e6
    print(f"image size: {size_mb:.1f} MB uncompressed (budget {budget} MB)")
    assert size_mb <= budget, f"image is {size_mb:.1f} MB, over the {budget} MB budget"
