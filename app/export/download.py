"""Download the pinned revision's files with huggingface_hub and check them against the upstream lock."""

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
    lock.verify(Path(snapshot))
    out = Path(out)
    for rel in lock.files:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(snapshot) / rel, out / rel)
    lock.verify(out)
    return out
