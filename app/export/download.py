"""Download the pinned revision's files with huggingface_hub (or take them from disk) and check them against the
model's lock."""

import shutil
from pathlib import Path

from huggingface_hub import snapshot_download
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

from app.lock import Lock


class DownloadError(RuntimeError):
    """The endpoint could not deliver the pinned files."""


def download(lock: Lock, out: Path, endpoint: str, token: str | None = None, cache_dir: str | None = None) -> Path:
    """Fetch exactly the locked files of lock.repo@lock.revision into out (a plain copy, no symlinks)."""
    where = f"{lock.repo}@{lock.revision} from {endpoint}"
    try:
        snapshot = snapshot_download(
            repo_id=lock.repo,
            revision=lock.revision,
            allow_patterns=sorted(lock.files),
            endpoint=endpoint,
            token=token or False,
            cache_dir=cache_dir,
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as e:
        raise DownloadError(
            f"downloading {where} failed: {e}. Check the endpoint (--hf-endpoint / HF_ENDPOINT), "
            "the repo and revision, and the token for private or gated repos."
        ) from e
    return copy_checked(lock, Path(snapshot), out)


def copy_checked(lock: Lock, source: Path, out: Path) -> Path:
    """The locked files of ``source`` (a download, or the model's files on disk) checked, then copied into out
    (a plain copy, no symlinks) and checked again; LockMismatch names the first file that differs."""
    lock.verify(Path(source))
    out = Path(out)
    for rel in lock.files:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(source) / rel, out / rel)
    lock.verify(out)
    return out
