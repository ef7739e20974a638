"""Shared-library resolution inside a root filesystem, as the dynamic loader would do it there, read statically
(pyelftools): an ELF's interpreter and NEEDED entries, found by its RPATH/RUNPATH ($ORIGIN expanded), then the
rootfs's ld.so.conf directories and the default ones. Paths are absolute paths *in* the rootfs; symlinks are
followed inside it (an absolute link means the rootfs's root, not the host's)."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

ELF_MAGIC = b"\x7fELF"
#: Where glibc looks after RUNPATH and ld.so.cache (whose contents ld.so.conf gives).
DEFAULT_DIRS = ("/lib", "/usr/lib", "/lib64", "/usr/lib64")


@dataclass
class ElfInfo:
    interpreter: str | None = None
    needed: list[str] = field(default_factory=list)
    search: list[str] = field(default_factory=list)  # RPATH / RUNPATH entries, as written


class Rootfs:
    """A root filesystem at ``root`` on this host."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._dirs: list[str] | None = None

    def host(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def chain(self, path: str, limit: int = 40) -> list[str]:
        """``path`` and every symlink it passes through, its own and its parents', ending at the real entry
        (all paths in the rootfs). The last one may not exist."""
        seen: list[str] = []
        parts = list(PurePosixPath(path).parts[1:])
        done = PurePosixPath("/")
        while parts and len(seen) < limit:
            here = done / parts.pop(0)
            if os.path.islink(self.host(str(here))):
                seen.append(str(here))
                target = PurePosixPath(os.readlink(self.host(str(here))))
                rest = list((target if target.is_absolute() else done / target).parts[1:])
                parts, done = rest + parts, PurePosixPath("/")
                continue
            done = PurePosixPath(os.path.normpath(here))
        seen.append(str(done))
        return seen

    def real(self, path: str) -> str:
        return self.chain(path)[-1]

    def exists(self, path: str) -> bool:
        return self.host(self.real(path)).exists()

    def is_elf(self, path: str) -> bool:
        host = self.host(path)
        if host.is_symlink() or not host.is_file():
            return False
        with open(host, "rb") as f:
            return f.read(4) == ELF_MAGIC

    def read(self, path: str) -> ElfInfo:
        info = ElfInfo()
        try:
            with open(self.host(self.real(path)), "rb") as f:
                elf = ELFFile(f)
                for segment in elf.iter_segments():
                    if segment["p_type"] == "PT_INTERP":
                        info.interpreter = segment.get_interp_name()
                for section in elf.iter_sections():
                    if not isinstance(section, DynamicSection):
                        continue
                    for tag in section.iter_tags():
                        if tag.entry.d_tag == "DT_NEEDED":
                            info.needed.append(tag.needed)
                        elif tag.entry.d_tag in ("DT_RUNPATH", "DT_RPATH"):
                            value = tag.runpath if tag.entry.d_tag == "DT_RUNPATH" else tag.rpath
                            info.search.extend(value.split(":"))
        except ELFError:
            pass  # not a loadable ELF (a data file that begins with the magic): nothing to resolve
        return info

    def library_dirs(self) -> list[str]:
        """The rootfs's ld.so.conf directories (includes followed), then the defaults."""
        if self._dirs is None:
            dirs: list[str] = []
            self._conf("/etc/ld.so.conf", dirs, set())
            self._dirs = [*dirs, *DEFAULT_DIRS]
        return self._dirs

    def _conf(self, path: str, dirs: list[str], seen: set[str]) -> None:
        host = self.host(self.real(path))
        if path in seen or not host.is_file():
            return
        seen.add(path)
        for line in host.read_text(errors="replace").splitlines():
            line = line.split("#", 1)[0].strip()
            if line.startswith("include "):
                pattern = line.split(None, 1)[1]
                pattern = pattern if pattern.startswith("/") else str(PurePosixPath(path).parent / pattern)
                for match in sorted(glob.glob(str(self.host(pattern)))):
                    self._conf("/" + str(Path(match).relative_to(self.root)), dirs, seen)
            elif line.startswith("/"):
                dirs.append(line)

    def resolve(self, elf_path: str, name: str, info: ElfInfo) -> str | None:
        """Where the loader finds NEEDED ``name`` of ``elf_path``, or None."""
        if "/" in name:
            return name if self.exists(name) else None
        origin = str(PurePosixPath(self.real(elf_path)).parent)
        dirs = [d.replace("$ORIGIN", origin).replace("${ORIGIN}", origin) for d in info.search if d]
        for directory in [*dirs, *self.library_dirs()]:
            candidate = os.path.normpath(f"{directory}/{name}")
            if self.exists(candidate) and self.is_elf(self.real(candidate)):
                return candidate
        return None

    def closure(self, seeds: list[str]) -> tuple[set[str], dict[str, list[str]]]:
        """Every path (symlinks included) that loading ``seeds`` touches: their interpreters and NEEDED
        libraries, transitively; and, per ELF, the NEEDED names it cannot resolve."""
        paths: set[str] = set()
        missing: dict[str, list[str]] = {}
        todo = list(seeds)
        while todo:
            path = todo.pop()
            if path in paths:
                continue
            paths.update(self.chain(path))
            real = self.real(path)
            if not self.is_elf(real):
                continue
            info = self.read(real)
            wanted = [*([info.interpreter] if info.interpreter else []), *info.needed]
            for name in wanted:
                found = self.resolve(real, name, info)
                if found is None:
                    missing.setdefault(real, []).append(name)
                elif found not in paths:
                    todo.append(found)
        return paths, missing

    def elves(self, top: str = "/") -> list[str]:
        """Every ELF file under ``top`` (symlinks not followed)."""
        found = []
        for dirpath, dirnames, files in os.walk(self.host(top)):
            dirnames.sort()
            for name in sorted(files):
                path = "/" + str((Path(dirpath) / name).relative_to(self.root))
                if self.is_elf(path):
                    found.append(path)
        return found
