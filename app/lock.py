"""Locks: sha256 and size of every file of a model directory, and checking a directory against one.

Shared by the model stage (app.export writes and checks locks) and the service (which checks the files it
loads); standard library only, so the service imports nothing of the export's dependencies.
"""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "model.lock.json"


class LockMismatch(RuntimeError):
    """A file is missing or differs from its lock entry."""


@dataclass(frozen=True)
class Lock:
    repo: str
    revision: str
    files: dict[str, dict]

    @classmethod
    def read(cls, path: Path) -> "Lock":
        data = json.loads(Path(path).read_text())
        return cls(repo=data["repo"], revision=data["revision"], files=data["files"])

    def write(self, path: Path, **extra) -> None:
        body = {"repo": self.repo, "revision": self.revision, **extra, "files": self.files}
        Path(path).write_text(json.dumps(body, indent=2, sort_keys=False) + "\n")

    def verify(self, root: Path, names: list[str] | None = None) -> None:
        """Raise LockMismatch naming the first file that is missing or differs (all locked files, or names)."""
        root = Path(root)
        for rel in sorted(self.files) if names is None else names:
            want = self.files.get(rel)
            if want is None:
                raise LockMismatch(f"{rel}: not listed in the lock of {self.repo}@{self.revision}")
            path = root / rel
            if not path.is_file():
                raise LockMismatch(f"{rel}: missing from {root} (locked for {self.repo}@{self.revision})")
            got = file_entry(path)
            if got != want:
                raise LockMismatch(
                    f"{rel}: sha256 {got['sha256']} size {got['size']} does not match the lock "
                    f"(sha256 {want['sha256']} size {want['size']}) for {self.repo}@{self.revision}"
                )


def file_entry(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return {"sha256": digest.hexdigest(), "size": path.stat().st_size}


def lock_directory(root: Path, repo: str, revision: str) -> Lock:
    """A lock of every regular file under root except the lock file itself."""
    root = Path(root)
    files = {
        p.relative_to(root).as_posix(): file_entry(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != LOCK_NAME
    }
    return Lock(repo=repo, revision=revision, files=files)
