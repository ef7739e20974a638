"""An image built on a published base (`dagger call --base-ref REF@sha256:… build`), against the base pulled back
from the registry and the full build of the same commit: the base's layers plus one, the full build's layers,
the base's runtime config, and it serves.

`dagger call base-check` mounts the three OCI tarballs (BASE_TARBALL, ON_BASE_TARBALL, FULL_TARBALL) and binds
the image built on the base at EMBEDDER_BASE_URL."""

from __future__ import annotations

import os
import tarfile

import httpx
import pytest

from oci_support import read_image

TARBALLS = {name: os.environ.get(f"{name.upper()}_TARBALL", "") for name in ("base", "on_base", "full")}
URL = os.environ.get("EMBEDDER_BASE_URL", "")
pytestmark = pytest.mark.skipif(not all(TARBALLS.values()) or not URL, reason="run by `dagger call base-check`")
#: What the base decides about how the image runs; the build on it adds labels only.
RUNTIME_CONFIG = ("Env", "User", "Entrypoint", "Cmd", "WorkingDir", "ExposedPorts", "Healthcheck")
KEY_LABEL = "io.embedder.base.key"


@pytest.fixture(scope="module")
def images() -> dict[str, tuple[dict, list[str]]]:
    return {name: read_image(path) for name, path in TARBALLS.items()}


def diff_ids(config: dict) -> list[str]:
    return config["rootfs"]["diff_ids"]


def test_layers_are_the_bases_plus_one(images):
    base, on_base = diff_ids(images["base"][0]), diff_ids(images["on_base"][0])
    assert len(on_base) == len(base) + 1, f"base {len(base)} layers, built on it {len(on_base)}"
    assert on_base[:-1] == base


def test_same_layers_as_the_full_build(images):
    assert diff_ids(images["on_base"][0]) == diff_ids(images["full"][0])


def test_runtime_config_and_key_come_from_the_base(images):
    base, on_base = images["base"][0], images["on_base"][0]
    for field in RUNTIME_CONFIG:
        assert on_base["config"].get(field) == base["config"].get(field), field
    assert on_base["config"]["Labels"][KEY_LABEL] == base["config"]["Labels"][KEY_LABEL]
    assert "org.opencontainers.image.revision" not in base["config"]["Labels"], "the base names no commit"


def test_top_layer_holds_the_app_and_the_sbom_only(images):
    config, blobs = images["on_base"]
    with tarfile.open(TARBALLS["on_base"]) as outer, tarfile.open(fileobj=outer.extractfile(blobs[-1])) as layer:
        members = list(layer)
    files = [m.name for m in members if m.isfile()]
    assert {(m.uid, m.gid) for m in members} == {(0, 0)}, "the service's user must not own its code"
    sbom = config["config"]["Labels"]["io.embedder.sbom"].lstrip("/")
    assert sbom in files
    outside = [f for f in files if f != sbom and not f.startswith("srv/embedder/app/")]
    assert not outside, outside
    assert any(f.endswith(".pyc") for f in files) and "srv/embedder/app/main.py" in files


def test_built_image_is_ready_and_embeds():
    with httpx.Client(base_url=URL, timeout=60) as client:
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        r = client.post("/embed", json={"inputs": ["a published base", "and one app layer"]})
        assert r.status_code == 200, r.text
        assert len(r.json()["embeddings"]) == 2
