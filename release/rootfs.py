"""The minimal image's system files, picked from the base image's filesystem: ``python -m release.rootfs``.

What the service loads, and nothing else:
- the interpreter (the chain of links from the virtualenv's ``python``) and its standard library (less the
  parts only a developer runs: IDLE, tkinter, ensurepip, turtledemo, the test suite, the static library);
- every shared object that release/loaded.py saw mapped into the running service (OpenVINO's plugin and
  frontend, NSS, TBB…), and, read statically (release/elf.py), every library that any of these, the standard
  library's extensions and the virtualenv's extensions name as NEEDED, transitively, with the dynamic loader;
- the loader's configuration, CA certificates, OpenSSL's configuration, nsswitch.conf, os-release and
  debian_version; /etc/passwd and /etc/group with root and the service's user; an empty /tmp;
- each Debian package's copyright file and a dpkg status file per package (``var/lib/dpkg/status.d/NAME``,
  as distroless does) for exactly the packages with files here, with the md5sums of the files shipped, so that
  scanners match CVEs. A package shipped in part says so (``Embedder-Shipped: partial, N of M files``).

Files keep the base's times (its bytecode checks the standard library's source times); what this writes, and
every directory, gets ``--epoch``. Prints the size by part.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
from collections import defaultdict
from pathlib import Path, PurePosixPath

from debian.deb822 import Deb822

from release.elf import Rootfs
from release.sbom import SHIPPED_FIELD

#: Standard-library entries a service never runs.
STDLIB_SKIP = {"idlelib", "tkinter", "turtledemo", "ensurepip", "test", "__phello__", "turtle.py", "lib2to3"}
STDLIB_SKIP_PREFIX = ("config-",)  # the static libpython and the Makefile, for building extensions
#: Configuration the service's libraries read, where the base has it.
CONFIG = ["/etc/ld.so.conf", "/etc/ld.so.cache", "/etc/nsswitch.conf", "/etc/host.conf", "/etc/os-release",
          "/etc/debian_version", "/etc/ssl/certs/ca-certificates.crt", "/usr/lib/ssl/openssl.cnf",
          "/etc/ssl/openssl.cnf"]
CONFIG_DIRS = ["/etc/ld.so.conf.d"]
#: What the image's own layers hold (the runtime stage adds them).
NOT_SYSTEM = ("/proc/", "/dev/", "/sys/", "/tmp/", "/run/")
STATUS_DIR = "var/lib/dpkg/status.d"
INFO_DIR = "/var/lib/dpkg/info"


def parent_real(fs: Rootfs, path: str) -> str:
    """``path`` with its parent directories' links resolved, its own name kept (how dpkg's lists name it)."""
    p = PurePosixPath(path)
    return str(PurePosixPath(fs.real(str(p.parent))) / p.name) if str(p.parent) != path else path


def stdlib_files(fs: Rootfs, directory: str) -> list[str]:
    top = fs.real(directory)
    found = []
    for dirpath, dirnames, files in os.walk(fs.host(top)):
        rel = "/" + str(Path(dirpath).relative_to(fs.root))
        dirnames[:] = sorted(d for d in dirnames if not (rel == top and (d in STDLIB_SKIP or d.startswith(
            STDLIB_SKIP_PREFIX))) and d != "site-packages" and d != "dist-packages")
        found += [f"{rel}/{n}" for n in sorted(files) if not (rel == top and n in STDLIB_SKIP)]
        found += [f"{rel}/{d}" for d in dirnames if os.path.islink(fs.host(f"{rel}/{d}"))]
    return found


def pick(fs: Rootfs, loaded: dict, venv: str, own: tuple[str, ...] = ()) -> tuple[set[str], dict[str, list[str]]]:
    """Every path to ship (files and links, outside ``venv`` and the image's ``own`` directories: the model,
    the app, which the service maps too), and the NEEDED names nothing resolves."""
    inside = tuple(d.rstrip("/") + "/" for d in (venv, *own))
    seeds = [p for p in loaded["mapped"] if not p.startswith(NOT_SYSTEM) and fs.exists(p)]
    for directory in loaded["stdlib"]:
        seeds += stdlib_files(fs, directory)
    seeds += [p for p in CONFIG if fs.exists(p)]
    for directory in CONFIG_DIRS:
        if fs.host(directory).is_dir():
            seeds += ["/" + str(p.relative_to(fs.root)) for p in sorted(fs.host(directory).iterdir())]
    # The virtualenv's links out of it (bin/python -> the base's interpreter) and its extensions' libraries.
    for dirpath, _, files in os.walk(fs.host(venv)):
        for name in files:
            path = "/" + str((Path(dirpath) / name).relative_to(fs.root))
            if os.path.islink(fs.host(path)) or fs.is_elf(path):
                seeds.append(path)
    paths, missing = fs.closure(seeds)
    keep = {p for p in paths if not p.startswith(inside) and (fs.host(p).is_symlink() or fs.host(p).is_file())}
    return keep, missing


def package_lists(fs: Rootfs) -> dict[str, list[str]]:
    """Debian package -> the entries (files and links, not directories) its list names, as paths here."""
    owned = {}
    for path in sorted(fs.host(INFO_DIR).glob("*.list")):
        name = path.name.removesuffix(".list").split(":")[0]
        entries = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        owned[name] = [
            e for e in (parent_real(fs, x) for x in entries)
            if fs.host(e).is_symlink() or fs.host(e).is_file()
        ]
    return owned


def status_paragraphs(fs: Rootfs) -> dict[str, Deb822]:
    with open(fs.host("/var/lib/dpkg/status"), encoding="utf-8") as f:
        return {p["Package"]: p for p in Deb822.iter_paragraphs(f) if p.get("Status", "").endswith(" installed")}


def md5sums(fs: Rootfs, name: str, arch: str, shipped: set[str]) -> str:
    for candidate in (f"{name}:{arch}.md5sums", f"{name}.md5sums"):
        host = fs.host(f"{INFO_DIR}/{candidate}")
        if host.is_file():
            lines = host.read_text(errors="replace").splitlines()
            return "".join(f"{line}\n" for line in lines
                           if parent_real(fs, "/" + line.split(None, 1)[-1].strip()) in shipped)
    return ""


def copy(fs: Rootfs, path: str, out: Path) -> None:
    src, dst = fs.host(path), out / path.lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
        st = os.lstat(src)
        os.utime(dst, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)
    else:
        shutil.copy2(src, dst)


def write(out: Path, path: str, text: str, mode: int = 0o644) -> None:
    dst = out / path.lstrip("/")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text)
    dst.chmod(mode)


def accounts(uid: int, user: str) -> dict[str, str]:
    return {
        "/etc/passwd": f"root:x:0:0:root:/root:/usr/sbin/nologin\n{user}:x:{uid}:{uid}::/nonexistent:/usr/sbin/nologin\n",
        "/etc/group": f"root:x:0:\n{user}:x:{uid}:\n",
    }


def build(fs: Rootfs, loaded: dict, venv: str, out: Path, epoch: int, uid: int, user: str,
          own: tuple[str, ...] = ()) -> dict:
    paths, missing = pick(fs, loaded, venv, own)
    if missing:
        raise SystemExit("libraries not found in the base image:\n" + "\n".join(
            f"  {elf}: {', '.join(names)}" for elf, names in sorted(missing.items())))
    owned = package_lists(fs)
    owner = {entry: name for name, entries in owned.items() for entry in entries}
    by_package = defaultdict(set)
    for path in paths:
        if path in owner:
            by_package[owner[path]].add(path)
    for name in list(by_package):
        copyright_file = f"/usr/share/doc/{name}/copyright"
        if fs.host(copyright_file).is_file():
            paths.update(fs.chain(copyright_file))
            for path in fs.chain(copyright_file):  # a link to another package's directory ships that one's
                if path in owner:
                    by_package[owner[path]].add(path)
    paths -= set(accounts(uid, user))
    for path in sorted(paths):
        copy(fs, path, out)
    for path, text in accounts(uid, user).items():
        write(out, path, text)
    status = status_paragraphs(fs)
    shipped = {}
    for name, files in sorted(by_package.items()):
        para = Deb822(status[name])
        total = len(owned[name])
        para[SHIPPED_FIELD] = "all" if len(files) >= total else f"partial, {len(files)} of {total} files"
        shipped[name] = para[SHIPPED_FIELD]
        write(out, f"{STATUS_DIR}/{name}", para.dump())
        write(out, f"{STATUS_DIR}/{name}.md5sums", md5sums(fs, name, para.get("Architecture", ""), files))
    (out / "tmp").mkdir(exist_ok=True)
    (out / "tmp").chmod(0o1777)
    for dirpath, dirnames, files in os.walk(out):
        for d in dirnames:
            os.utime(Path(dirpath) / d, (epoch, epoch))
        for f in files:
            if not (Path(dirpath) / f).relative_to(out).as_posix().startswith(("etc/passwd", "etc/group", STATUS_DIR)):
                continue
            os.utime(Path(dirpath) / f, (epoch, epoch))
    os.utime(out, (epoch, epoch))
    return {"packages": shipped, "sizes": sizes(fs, paths, loaded)}


def sizes(fs: Rootfs, paths: set[str], loaded: dict) -> dict[str, int]:
    stdlib = tuple(fs.real(d) + "/" for d in loaded["stdlib"])
    parts = defaultdict(int)
    for path in paths:
        st = os.lstat(fs.host(path))
        if not stat.S_ISREG(st.st_mode):
            continue
        kind = "standard library" if path.startswith(stdlib) else (
            "shared libraries" if fs.is_elf(path) else "other files")
        parts[kind] += st.st_size
    return dict(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rootfs", type=Path, required=True, help="the base image with the virtualenv")
    parser.add_argument("--loaded", type=Path, required=True, help="release/loaded.py's output")
    parser.add_argument("--venv", required=True)
    parser.add_argument("--own", action="append", default=[],
                        help="a directory the image's own layers hold (the model, the app): never picked")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epoch", type=int, required=True)
    parser.add_argument("--uid", type=int, default=1000)
    parser.add_argument("--user", default="embedder")
    a = parser.parse_args(argv)
    report = build(Rootfs(a.rootfs), json.loads(a.loaded.read_text()), a.venv, a.out, a.epoch, a.uid, a.user,
                   tuple(a.own))
    print(json.dumps(report, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
