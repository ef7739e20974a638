"""Checks of the built image: its config (from the OCI tarball) and its filesystem (the image's rootfs).

The pipeline's `image-checks` mounts both and sets IMAGE_TARBALL, IMAGE_ROOTFS and IMAGE_SIZE_BUDGET_MB.
"""

import importlib.util
import json
import os
import tarfile
from pathlib import Path

import pytest

from oci_support import read_image

TARBALL, ROOTFS = os.environ.get("IMAGE_TARBALL"), os.environ.get("IMAGE_ROOTFS")
pytestmark = pytest.mark.skipif(not (TARBALL and ROOTFS), reason="needs the built image (dagger call image-checks)")

#: A minimal image has none of these, wherever they would be looked for.
SHELLS_AND_TOOLS = ["sh", "bash", "dash", "busybox", "apt", "apt-get", "dpkg", "dpkg-query", "perl", "ls", "cat",
                    "cp", "rm", "env", "chmod", "mkdir", "find", "grep", "sed", "tar", "gzip", "su", "login", "pip",
                    "pip3"]
BIN_DIRS = ["bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin"]
COMPILERS = ["gcc", "cc", "g++", "c++", "clang", "tcc", "x86_64-linux-gnu-gcc", "ld", "as", "make"]
FORBIDDEN_PACKAGES = ("torch", "nvidia", "triton", "sentence_transformers", "transformers")
LABELS = ["title", "source", "revision", "version", "created"]


@pytest.fixture(scope="module")
def config() -> dict:
    return read_image(TARBALL)[0]["config"]


@pytest.fixture(scope="module")
def env(config) -> dict:
    return dict(item.split("=", 1) for item in config["Env"])


@pytest.fixture(scope="module")
def rootfs() -> Path:
    return Path(ROOTFS)


def test_platform_is_the_one_built_for():
    image = read_image(TARBALL)[0]
    assert f"{image['os']}/{image['architecture']}" == os.environ["IMAGE_PLATFORM"]


def test_system_layer_holds_none_of_the_images_own_files():
    """The first layer (interpreter, libraries, accounts) holds nothing that the model, virtualenv or app layers
    hold: the engine maps the model's weights, which must not be picked into it as well."""
    _, layers = read_image(TARBALL)
    with tarfile.open(TARBALL) as outer, tarfile.open(fileobj=outer.extractfile(layers[0])) as system:
        own = [m.name for m in system.getmembers() if m.name.lstrip("./").startswith(("opt/", "srv/"))]
    assert not own, f"the system layer holds the image's own files: {own[:5]}"


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
    assert env["EMBEDDER_ENGINE"] in ("openvino", "onnxruntime") and "EMBEDDER_VARIANT" not in env
    assert env["EMBEDDER_MODEL_DIR"].endswith("/c9745ed1d9f207416be6d2e6f8de32d1f16199bf")


def test_oci_labels(config):
    labels = config["Labels"]
    for name in LABELS:
        assert labels.get(f"org.opencontainers.image.{name}"), f"label org.opencontainers.image.{name} missing"
    assert len(labels["org.opencontainers.image.revision"]) == 40
    assert labels["io.embedder.model.revision"] == "c9745ed1d9f207416be6d2e6f8de32d1f16199bf"
    assert labels["io.embedder.engine"] in ("openvino", "onnxruntime")


def test_model_directory_is_in_the_image(env, rootfs):
    model = rootfs / env["EMBEDDER_MODEL_DIR"].lstrip("/")
    lock = json.loads((model / "model.lock.json").read_text())
    graphs = {"openvino": ["openvino/openvino_model.xml", "openvino/openvino_model.bin"],
              "onnxruntime": ["onnx/model.onnx"]}
    for name in graphs[env["EMBEDDER_ENGINE"]]:
        assert (model / name).stat().st_size == lock["files"][name]["size"]
    other = ({"openvino", "onnxruntime"} - {env["EMBEDDER_ENGINE"]}).pop()
    assert not (model / graphs[other][0].split("/")[0]).exists(), "only the served engine's graph is shipped"
    assert (model / "tokenizer.json").is_file()
    assert not (model / "reference.json").exists(), "the export check's reference embeddings are not shipped"
    assert "startcheck.json" in lock["files"] and (model / "startcheck.json").is_file(), "the start check's are"


def test_no_compiler(rootfs):
    found = [
        str(d / name) for d in (rootfs / "usr/bin", rootfs / "usr/local/bin", rootfs / "bin") for name in COMPILERS
        if (d / name).exists()
    ]
    assert not found, f"compilers or build tools in the image: {found}"


def test_no_shell_package_manager_or_perl(rootfs, env):
    dirs = [*BIN_DIRS, *(d.lstrip("/") for d in env["PATH"].split(":"))]
    found = sorted({f"{d}/{name}" for d in dirs for name in SHELLS_AND_TOOLS if os.path.lexists(rootfs / d / name)})
    assert not found, f"shells, package managers or tools in the image: {found}"
    perl = [str(p.relative_to(rootfs)) for top in ("usr/share", "usr/lib") for p in (rootfs / top).glob("**/perl*")]
    assert not perl, f"perl in the image: {perl[:5]}"
    assert not (rootfs / "var/lib/dpkg/status").exists() and not (rootfs / "usr/bin/dpkg").exists()


def test_every_elf_resolves_its_libraries_inside_the_image(rootfs):
    """Checked statically, as the loader would search (RUNPATH with $ORIGIN, ld.so.conf, the defaults): every
    ELF in the image, OpenVINO's plugins and the standard library's extensions included, finds its
    interpreter and every NEEDED library in the image."""
    from release.elf import Rootfs  # the release group (pyelftools), which image-checks installs

    image = Rootfs(rootfs)
    elves = image.elves()
    _, missing = image.closure(elves)
    print(f"{len(elves)} ELF files, each with its libraries inside the image")
    assert len(elves) > 50
    assert not missing, "\n".join(f"{elf}: {', '.join(names)}" for elf, names in sorted(missing.items()))


def test_standard_library_bytecode_is_current(rootfs):
    """The interpreter's bytecode is valid for its sources as shipped (times kept), so that nothing is compiled
    again at start (on a read-only root, on every start)."""
    stdlib = [p for p in rootfs.glob("usr/*lib*/python3.*/__pycache__/*.pyc")
              if (p.parent.parent / (p.name.split(".")[0] + ".py")).is_file()]
    assert len(stdlib) > 100
    stale = []
    for pyc in stdlib:
        source = pyc.parent.parent / (pyc.name.split(".")[0] + ".py")
        flags, key = pyc_header(source)
        if flags == 0 and int.from_bytes(key[:4], "little") != int(source.stat().st_mtime):
            stale.append(source.name)
    assert not stale, f"{len(stale)} standard-library modules with stale bytecode, e.g. {stale[:3]}"


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


def pyc_header(source: Path) -> tuple[int, bytes]:
    """(flags, hash or mtime+size) of the bytecode Python would use for ``source``."""
    data = Path(importlib.util.cache_from_source(str(source))).read_bytes()[:16]
    assert data[:4] == importlib.util.MAGIC_NUMBER, f"{source}: bytecode for another Python"
    return int.from_bytes(data[4:8], "little"), data[8:16]


def test_app_ships_current_checked_hash_bytecode(env, rootfs):
    """The service compiles nothing at start: every module of app/ has bytecode that Python checks by the
    source's hash (flags 0b11), and the hash is the shipped source's, so it is used as it is."""
    sources = sorted((rootfs / env["PYTHONPATH"].lstrip("/") / "app").rglob("*.py"))
    assert len(sources) > 10
    for source in sources:
        flags, key = pyc_header(source)
        assert flags == 0b11, f"{source.name}: not checked-hash bytecode (flags {flags:#b})"
        assert key == importlib.util.source_hash(source.read_bytes()), f"{source.name}: bytecode is stale"


def test_dependencies_ship_hash_based_bytecode(rootfs):
    """No source time in the virtualenv's bytecode (SOURCE_DATE_EPOCH at compile time): clamped file times
    cannot make it stale, and two builds write the same bytes."""
    sources = [p for p in (rootfs / "opt/venv/lib").rglob("*.py") if "__pycache__" not in p.parts]
    compiled = [p for p in sources if Path(importlib.util.cache_from_source(str(p))).exists()]
    assert len(compiled) > 0.9 * len(sources) > 100
    stamped = [p for p in compiled if pyc_header(p)[0] == 0]
    assert not stamped, f"{len(stamped)} modules have timestamp bytecode, e.g. {stamped[:3]}"
