"""The SBOM the built image carries (`dagger call sbom-check` mounts it as SBOM and the image's filesystem as
IMAGE_ROOTFS): valid CycloneDX, complete against what the image holds, and through the license gate."""

from __future__ import annotations

import collections
import json
import os
from email.parser import HeaderParser
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from debian.deb822 import Deb822

from release.licenses import problems
from release.sbom import IMAGE_PATH

SBOM, ROOTFS = os.environ.get("SBOM"), os.environ.get("IMAGE_ROOTFS")
pytestmark = pytest.mark.skipif(not (SBOM and ROOTFS), reason="needs the built image: dagger call sbom-check")


@pytest.fixture(scope="module")
def text() -> str:
    return Path(SBOM).read_text()


@pytest.fixture(scope="module")
def bom(text) -> dict:
    return json.loads(text)


def of_type(bom: dict, kind: str, purl: str = "") -> dict[str, dict]:
    return {c["name"]: c for c in bom["components"] if c["type"] == kind and c.get("purl", "").startswith(purl)}


def test_valid_cyclonedx(text, bom):
    assert bom["specVersion"] == "1.6"
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(text) is None
    counts = collections.Counter(c["type"] for c in bom["components"])
    print(f"\nSBOM components by type: {dict(sorted(counts.items()))}")
    assert os.environ["SBOM_LABEL"] == IMAGE_PATH


def test_every_python_distribution_with_version_license_and_wheel_hash(bom):
    listed = {**of_type(bom, "library", "pkg:pypi/"), **of_type(bom, "framework", "pkg:pypi/")}
    (site,) = (Path(ROOTFS) / "opt/venv/lib").glob("python3*/site-packages")
    installed = {}
    for info in site.glob("*.dist-info"):
        meta = HeaderParser().parsestr((info / "METADATA").read_text())
        installed[meta["Name"]] = meta["Version"]
    assert {n: c["version"] for n, c in listed.items()} == installed
    for name, c in listed.items():
        assert [h["alg"] for h in c.get("hashes", [])] == ["SHA-256"], f"{name}: no wheel hash from uv.lock"
        assert c.get("licenses"), f"{name}: no license"
    engine = os.environ.get("EMBEDDER_EXPECT_ENGINE", "openvino")
    other = {"openvino": "onnxruntime", "onnxruntime": "openvino"}[engine]
    assert "torch" not in listed and engine in listed and other not in listed, "the image ships one engine"


def test_every_debian_package_and_the_interpreter(bom):
    with open(Path(ROOTFS) / "var/lib/dpkg/status") as f:
        installed = {p["Package"] for p in Deb822.iter_paragraphs(f) if p.get("Status", "").endswith(" installed")}
    listed = {c["name"] for c in bom["components"] if c.get("purl", "").startswith("pkg:deb/debian/")}
    assert listed == installed
    (python,) = of_type(bom, "platform").values()
    assert python["name"] == "cpython" and python["version"].startswith("3.")


def test_model_with_its_license_and_shipped_files(bom):
    (model,) = of_type(bom, "machine-learning-model").values()
    lock_path = next(Path(ROOTFS).glob("opt/models/*/*/model.lock.json"))
    lock = json.loads(lock_path.read_text())
    assert (model["name"], model["version"]) == (lock["repo"], lock["revision"])
    assert lock["license"] and model["licenses"], "the model card's license is recorded in the lock"
    shipped = {p.relative_to(lock_path.parent).as_posix() for p in lock_path.parent.rglob("*") if p.is_file()}
    files = {f["name"]: f["hashes"][0]["content"] for f in model["components"]}
    assert set(files) == shipped - {"model.lock.json"}
    assert all(files[name] == lock["files"][name]["sha256"] for name in files)


def test_license_gate(bom):
    found = problems(bom)
    assert not found, "license gate:\n" + "\n".join(found)
