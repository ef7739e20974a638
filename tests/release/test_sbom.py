"""The SBOM the built image carries (`dagger call sbom-check` mounts it as SBOM and the image's filesystem as
IMAGE_ROOTFS): valid CycloneDX, complete against what the image holds, and through the license gate."""

from __future__ import annotations

import collections
import hashlib
import json
import os
from email.parser import HeaderParser
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from release.licenses import problems
from release.sbom import IMAGE_PATH, SHIPPED_FIELD, dpkg_paragraphs

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
    """The image keeps dpkg's record (status.d/, as distroless does) for exactly the packages it has files of;
    the SBOM lists those, with how much of each is shipped, and nothing else."""
    rootfs = Path(ROOTFS)
    installed = {p["Package"]: p for p in dpkg_paragraphs(rootfs)}
    listed = {c["name"]: c for c in bom["components"] if c.get("purl", "").startswith("pkg:deb/debian/")}
    assert set(listed) == set(installed) and "libc6" in listed
    for name, para in installed.items():
        sums = (rootfs / "var/lib/dpkg/status.d" / f"{name}.md5sums").read_text().splitlines()
        files = [line.split(None, 1)[1] for line in sums]
        assert files, f"{name}: no file of it is recorded"
        for digest, path in (line.split(None, 1) for line in sums):
            assert hashlib.md5((rootfs / path).read_bytes()).hexdigest() == digest, f"{name}: {path} differs"
        shipped = {p["name"]: p["value"] for p in listed[name].get("properties", [])}["embedder:deb:shipped"]
        assert shipped == para[SHIPPED_FIELD] and (shipped == "all" or shipped.startswith("partial, "))
    documented = {p.parent.name for p in (rootfs / "usr/share/doc").glob("*/copyright")}
    assert documented == set(installed), "every package with files here, and only those, has its copyright file"
    partial = sorted(n for n, p in installed.items() if p[SHIPPED_FIELD] != "all")
    print(f"\nDebian packages: {len(installed)}, shipped in part: {partial}")
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
