"""CycloneDX SBOM of the runtime image, read from its filesystem: ``python -m release.sbom --rootfs DIR …``.

Components: every Python distribution of the virtualenv (name, version, purl, the license its metadata
declares, the sha256 of the wheel uv.lock pinned for this platform), the Python interpreter, every Debian
package with files in the image (dpkg's status or status.d/, and how much of it is shipped; the license of
its DEP-5 copyright file where it is machine-readable),
and the model (``machine-learning-model``: repo, revision, license, and each shipped file with its sha256
from model.lock.json). Serial number and timestamp come from the commit, so one commit gives one SBOM.
"""

from __future__ import annotations

import argparse
import json
import tomllib
import uuid
from datetime import UTC, datetime
from email.parser import HeaderParser
from pathlib import Path

from cyclonedx.contrib.license.factories import LicenseFactory
from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.license import DisjunctiveLicense
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.validation.json import JsonStrictValidator
from cyclonedx.schema import SchemaVersion
from debian.copyright import Copyright, NotMachineReadableError
from debian.deb822 import Deb822
from packageurl import PackageURL
from packaging.utils import parse_wheel_filename

SCHEMA = SchemaVersion.V1_6
#: Where the image carries its own SBOM (and the label that names the path).
IMAGE_PATH, LABEL = "/usr/share/sbom/embedder.cdx.json", "io.embedder.sbom"
LICENSES = LicenseFactory()
#: The minimal image's status.d paragraphs say whether the package's files are all there ("all") or which part
#: ("partial, N of M files"); release/rootfs.py writes it.
SHIPPED_FIELD = "Embedder-Shipped"


def declared_license(metadata) -> str:
    """The license a distribution declares: License-Expression (PEP 639), else its License field, else the
    last part of its license classifiers; empty when it declares none."""
    if expr := metadata.get("License-Expression"):
        return expr.strip()
    text = (metadata.get("License") or "").strip()
    if text and "\n" not in text and len(text) < 100:
        return text
    classifiers = [c.split(" :: ")[-1] for c in metadata.get_all("Classifier") or [] if c.startswith("License ::")]
    return " OR ".join(classifiers)


def wheel_hashes(lock: dict) -> dict[tuple[str, str], dict[str, str]]:
    """(name, version) -> {wheel file name: sha256} from uv.lock."""
    found = {}
    for pkg in lock["package"]:
        wheels = {w["url"].rsplit("/", 1)[-1]: w["hash"].removeprefix("sha256:") for w in pkg.get("wheels", [])}
        found[(canonical(pkg["name"]), pkg.get("version", ""))] = wheels
    return found


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def python_components(site_packages: Path, lock: dict) -> list[Component]:
    hashes = wheel_hashes(lock)
    components = []
    for info in sorted(site_packages.glob("*.dist-info")):
        meta = HeaderParser().parsestr((info / "METADATA").read_text(encoding="utf-8"))
        name, version = meta["Name"], meta["Version"]
        wheel = (info / "WHEEL").read_text().splitlines()
        tags = {line.split(": ", 1)[1] for line in wheel if line.startswith("Tag: ")}
        wheels = hashes.get((canonical(name), version), {})
        # The wheel uv installed is the one whose tags the installed WHEEL file lists.
        sha = [h for file, h in wheels.items() if tags & {str(t) for t in parse_wheel_filename(file)[3]}]
        license_text = declared_license(meta)
        components.append(Component(
            type=ComponentType.LIBRARY, name=name, version=version, bom_ref=f"pypi:{canonical(name)}@{version}",
            purl=PackageURL("pypi", name=canonical(name), version=version),
            licenses=[LICENSES.make_from_string(license_text)] if license_text else [],
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=sha[0])] if sha else [],
        ))
    return components


def dpkg_paragraphs(rootfs: Path) -> list[Deb822]:
    """The installed packages dpkg records: one status file, or a file per package in status.d/ (as distroless
    images and the minimal image keep it; its *.md5sums files are not paragraphs)."""
    status, status_d = rootfs / "var/lib/dpkg/status", rootfs / "var/lib/dpkg/status.d"
    files = [status] if status.is_file() else sorted(p for p in status_d.glob("*") if p.suffix != ".md5sums")
    found = []
    for path in files:
        with open(path, encoding="utf-8") as f:
            found += [p for p in Deb822.iter_paragraphs(f) if p.get("Status", "").split()[-1:] == ["installed"]]
    return found


def debian_components(rootfs: Path) -> list[Component]:
    os_release = dict(
        line.split("=", 1) for line in (rootfs / "etc/os-release").read_text().splitlines() if "=" in line
    )
    distro = f"debian-{os_release.get('VERSION_ID', '').strip(chr(34))}"
    components = []
    for para in dpkg_paragraphs(rootfs):
        name, version, arch = para["Package"], para["Version"], para.get("Architecture", "all")
        shipped = para.get(SHIPPED_FIELD, "all")
        components.append(Component(
            type=ComponentType.LIBRARY if name.startswith("lib") else ComponentType.APPLICATION,
            name=name, version=version, bom_ref=f"deb:{name}@{version}",
            purl=PackageURL("deb", "debian", name, version, {"arch": arch, "distro": distro}),
            licenses=copyright_licenses(rootfs / "usr/share/doc" / name / "copyright"),
            properties=[Property(name="embedder:deb:shipped", value=shipped)],
        ))
    return components


def copyright_licenses(path: Path) -> list:
    """The licenses a DEP-5 (machine-readable) copyright file names; none for free-form files."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            parsed = Copyright(f, strict=False)
    except (OSError, NotMachineReadableError, ValueError):
        return []
    names = sorted({p.license.synopsis for p in parsed.all_files_paragraphs() if p.license and p.license.synopsis})
    return [DisjunctiveLicense(name=n) for n in names]


def model_component(model_dir: Path) -> Component:
    lock = json.loads((model_dir / "model.lock.json").read_text())
    repo, revision = lock["repo"], lock["revision"]
    files = [
        Component(type=ComponentType.FILE, name=rel, bom_ref=f"model-file:{rel}",
                  hashes=[HashType(alg=HashAlgorithm.SHA_256, content=entry["sha256"])],
                  properties=[Property(name="size", value=str(entry["size"]))])
        for rel, entry in sorted(lock["files"].items()) if (model_dir / rel).is_file()
    ]
    namespace, name = repo.split("/", 1)
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL, name=repo, version=revision, bom_ref=f"model:{repo}@{revision}",
        purl=PackageURL("huggingface", namespace, name, revision),
        licenses=[LICENSES.make_from_string(lock["license"])] if lock.get("license") else [],
        components=files,
    )


def build_bom(rootfs: Path, uv_lock: Path, model_dir: str, python_version: str, image_version: str,
              commit: str, epoch: int, engine: str) -> Bom:
    bom = Bom(serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"embedder:{commit}:{engine}"))
    bom.metadata.timestamp = datetime.fromtimestamp(epoch, UTC)
    bom.metadata.component = Component(
        type=ComponentType.CONTAINER, name="embedder", version=image_version, bom_ref="image",
        properties=[Property(name="vcs:revision", value=commit), Property(name="embedder:engine", value=engine)],
    )
    lock = tomllib.loads(uv_lock.read_text())
    (site_packages,) = (rootfs / "opt/venv/lib").glob("python3*/site-packages")
    bom.components.update(python_components(site_packages, lock))
    bom.components.add(Component(
        type=ComponentType.PLATFORM, name="cpython", version=python_version, bom_ref=f"python@{python_version}",
        purl=PackageURL("generic", name="cpython", version=python_version),
        licenses=[LICENSES.make_from_string("Python-2.0")],
    ))
    bom.components.update(debian_components(rootfs))
    bom.components.add(model_component(rootfs / model_dir.lstrip("/")))
    bom.register_dependency(bom.metadata.component, bom.components)
    return bom


def render(bom: Bom) -> str:
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    errors = JsonStrictValidator(SCHEMA).validate_str(text)
    if errors:
        raise SystemExit(f"the SBOM does not validate against CycloneDX {SCHEMA.to_version()}: {errors}")
    return text + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rootfs", type=Path, required=True, help="the image's filesystem")
    parser.add_argument("--uv-lock", type=Path, default=Path("uv.lock"))
    parser.add_argument("--model-dir", required=True, help="EMBEDDER_MODEL_DIR of the image")
    parser.add_argument("--python-version", required=True)
    parser.add_argument("--image-version", required=True)
    parser.add_argument("--commit", required=True)
    parser.add_argument("--epoch", type=int, required=True)
    parser.add_argument("--engine", required=True)
    parser.add_argument("--out", type=Path, required=True)
    a = parser.parse_args(argv)
    bom = build_bom(a.rootfs, a.uv_lock, a.model_dir, a.python_version, a.image_version, a.commit, a.epoch, a.engine)
    a.out.write_text(render(bom))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
