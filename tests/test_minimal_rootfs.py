"""release/elf.py and release/rootfs.py on a small root filesystem made of this machine's own ELF files: links
followed inside the rootfs, NEEDED resolved as the loader does (ld.so.conf, RUNPATH with $ORIGIN), what is
missing named, and a Debian package shipped in part recorded as such."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("elftools")
from debian.deb822 import Deb822  # noqa: E402

from release import rootfs as picker  # noqa: E402
from release.elf import Rootfs  # noqa: E402

TRIPLET = "x86_64-linux-gnu"
HOST_LIBC = Path(f"/lib/{TRIPLET}/libc.so.6")
HOST_LOADER = Path(f"/lib/{TRIPLET}/ld-linux-x86-64.so.2")
HOST_TRUE = Path("/usr/bin/true")
pytestmark = pytest.mark.skipif(not (HOST_LIBC.is_file() and HOST_LOADER.is_file() and HOST_TRUE.is_file()),
                                reason="needs an x86_64 glibc system to borrow ELF files from")


def put(root: Path, path: str, source: Path | None = None, text: str = "") -> None:
    dst = root / path.lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if source is not None:
        shutil.copy2(source, dst)
    else:
        dst.write_text(text)


@pytest.fixture
def fs(tmp_path: Path) -> Rootfs:
    """usrmerge layout: /lib -> usr/lib, /lib64's loader an absolute link; libc found through ld.so.conf.d."""
    root = tmp_path / "root"
    put(root, f"/usr/lib/{TRIPLET}/libc.so.6", HOST_LIBC)
    put(root, f"/usr/lib/{TRIPLET}/ld-linux-x86-64.so.2", HOST_LOADER)
    put(root, "/usr/bin/true", HOST_TRUE)
    os.symlink("usr/lib", root / "lib")
    (root / "lib64").mkdir()
    os.symlink(f"/lib/{TRIPLET}/ld-linux-x86-64.so.2", root / "lib64/ld-linux-x86-64.so.2")
    put(root, "/etc/ld.so.conf", text="include /etc/ld.so.conf.d/*.conf\n")
    put(root, f"/etc/ld.so.conf.d/{TRIPLET}.conf", text=f"# multiarch\n/lib/{TRIPLET}\n/usr/lib/{TRIPLET}\n")
    return Rootfs(root)


def test_links_are_followed_inside_the_rootfs(fs):
    assert fs.chain("/lib64/ld-linux-x86-64.so.2") == [
        "/lib64/ld-linux-x86-64.so.2", "/lib", f"/usr/lib/{TRIPLET}/ld-linux-x86-64.so.2"]
    assert fs.exists("/lib64/ld-linux-x86-64.so.2") and not fs.exists("/bin/true")


def test_closure_has_the_loader_and_libc_with_the_links_on_the_way(fs):
    paths, missing = fs.closure(["/usr/bin/true"])
    assert not missing
    assert {"/usr/bin/true", "/lib64/ld-linux-x86-64.so.2", "/lib", f"/usr/lib/{TRIPLET}/libc.so.6",
            f"/usr/lib/{TRIPLET}/ld-linux-x86-64.so.2"} <= paths


def test_a_library_the_rootfs_lacks_is_named(fs):
    os.remove(fs.host(f"/usr/lib/{TRIPLET}/libc.so.6"))
    _, missing = fs.closure(["/usr/bin/true"])
    assert missing == {"/usr/bin/true": ["libc.so.6"]}


def test_runpath_origin_finds_a_bundled_library(fs):
    """A wheel's extension finds its bundled copy through $ORIGIN first (here: libc moved beside it)."""
    bundled = fs.host("/opt/venv/libs/libc.so.6")
    bundled.parent.mkdir(parents=True)
    shutil.move(fs.host(f"/usr/lib/{TRIPLET}/libc.so.6"), bundled)
    info = fs.read("/usr/bin/true")
    info.search = ["$ORIGIN/../../opt/venv/libs"]
    assert fs.resolve("/usr/bin/true", "libc.so.6", info) == "/opt/venv/libs/libc.so.6"


def test_picks_what_runs_and_records_a_partial_package(fs, tmp_path):
    put(fs.root, "/usr/share/doc/libc6/copyright", text="Format: free-form\n")
    put(fs.root, f"/usr/lib/{TRIPLET}/libunused.so.1", text="not shipped")
    put(fs.root, "/var/lib/dpkg/status", text=(
        "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.41-1\n\n"
        "Package: coreutils\nStatus: install ok installed\nArchitecture: amd64\nVersion: 9.7-3\n"))
    put(fs.root, "/var/lib/dpkg/info/libc6:amd64.list", text="".join(f"{p}\n" for p in [
        "/.", "/lib", f"/lib/{TRIPLET}", f"/lib/{TRIPLET}/libc.so.6", f"/lib/{TRIPLET}/libunused.so.1",
        "/usr/share/doc/libc6/copyright"]))
    put(fs.root, "/var/lib/dpkg/info/libc6:amd64.md5sums", text=(
        f"aaaa  lib/{TRIPLET}/libc.so.6\nbbbb  lib/{TRIPLET}/libunused.so.1\ncccc  usr/share/doc/libc6/copyright\n"))
    put(fs.root, "/var/lib/dpkg/info/coreutils.list", text="/usr/bin/true\n")
    os.remove(fs.host("/usr/bin/true"))  # coreutils is not what runs: nothing of it is shipped
    put(fs.root, "/opt/venv/bin/tool", HOST_TRUE)  # a virtualenv's ELF: its libraries are shipped, it is not
    put(fs.root, "/opt/models/m/weights.bin", text="mapped by the engine, shipped by the model's own layer")
    loaded = {"mapped": [f"/usr/lib/{TRIPLET}/libc.so.6", "/proc/self/nothing", "/opt/models/m/weights.bin"],
              "stdlib": []}
    out = tmp_path / "out"
    report = picker.build(fs, loaded, "/opt/venv", out, epoch=1_700_000_000, uid=1000, user="embedder",
                          own=("/opt/models",))
    assert report["packages"] == {"libc6": "partial, 3 of 4 files"}
    assert (out / f"usr/lib/{TRIPLET}/libc.so.6").is_file() and (out / "lib").is_symlink()
    assert not (out / f"usr/lib/{TRIPLET}/libunused.so.1").exists() and not (out / "opt").exists()
    status = Deb822((out / "var/lib/dpkg/status.d/libc6").read_text())
    assert status["Version"] == "2.41-1" and status[picker.SHIPPED_FIELD] == "partial, 3 of 4 files"
    assert (out / "var/lib/dpkg/status.d/libc6.md5sums").read_text().split() == [
        "aaaa", f"lib/{TRIPLET}/libc.so.6", "cccc", "usr/share/doc/libc6/copyright"]
    assert not (out / "var/lib/dpkg/status.d/coreutils").exists()
    assert "embedder:x:1000:1000:" in (out / "etc/passwd").read_text()
    assert (out / "tmp").stat().st_mode & 0o1777 == 0o1777
    assert os.stat(out / "etc").st_mtime == 1_700_000_000
    assert json.dumps(report)  # what the build prints


def test_the_sbom_reads_every_status_d_paragraph(tmp_path):
    """Package names may have dots (libbz2-1.0, python3.13-minimal); only *.md5sums files are not paragraphs."""
    from release.sbom import dpkg_paragraphs

    for name in ("libbz2-1.0", "python3.13-minimal"):
        put(tmp_path, f"/var/lib/dpkg/status.d/{name}", text=f"Package: {name}\nStatus: install ok installed\n")
        put(tmp_path, f"/var/lib/dpkg/status.d/{name}.md5sums", text="aaaa  usr/lib/x\n")
    assert [p["Package"] for p in dpkg_paragraphs(tmp_path)] == ["libbz2-1.0", "python3.13-minimal"]
