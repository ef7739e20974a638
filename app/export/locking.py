"""Making a model lock (trust on first use): choose the files the model stage needs from the repo's file list,
download them once, record each one's sha256 and size, the model's license and the selection policy.

`python -m app.export lock --repo R --revision SHA --out FILE` (or `--snapshot DIR` for weights on disk); the
pipeline's `dagger call lock` runs it and hands the file over for review and commit under models/.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from app.lock import Lock, file_entry

CARD = "README.md"  # the model card: its metadata names the license
#: Top-level files kept: the model card (license), the transformer's and sentence-transformers' configs, and
#: every tokenizer format; weights are chosen apart (WEIGHTS, PICKLES).
TOP_LEVEL = (
    "README.md", "config.json", "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
    "vocab.json", "merges.txt", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model",
)
#: In module folders (1_Pooling/, 2_Dense/, …): their config and weights.
MODULE_FILES = ("config.json",)
WEIGHTS = (".safetensors", ".safetensors.index.json")
#: Pickled PyTorch weights: kept only in a folder that has no safetensors (loading them runs code).
PICKLES = (".bin", ".pt", ".pth")
#: Folders holding other exports of the same weights (never read: the stage makes its own ONNX).
SKIPPED_FOLDERS = ("onnx/", "openvino/", "coreml/", "tf/", "flax/")
#: Over this much weight the model is out of scope (memory sizing, image budget and export time assume less).
MAX_WEIGHT_BYTES = 2 * 1024**3
POLICY = {
    "top_level": list(TOP_LEVEL),
    "module_folders": [*MODULE_FILES, "weights"],
    "weights": "*.safetensors; pickles (*.bin, *.pt) only in a folder without safetensors",
    "skipped_folders": list(SKIPPED_FOLDERS),
    "max_weight_bytes": MAX_WEIGHT_BYTES,
}


class LockRefused(ValueError):
    """The repo's files cannot make a lock the model stage can use."""


def select(names: list[str]) -> list[str]:
    """The files of ``names`` (repo-relative paths) the model stage needs, by POLICY."""
    with_safetensors = {posixpath.dirname(n) for n in names if n.endswith(".safetensors")}
    chosen = []
    for name in sorted(names):
        folder, base = posixpath.split(name)
        if (folder + "/").startswith(SKIPPED_FOLDERS) or folder.count("/"):
            continue
        weights = name.endswith(WEIGHTS) or (name.endswith(PICKLES) and folder not in with_safetensors)
        if weights or base in (MODULE_FILES if folder else TOP_LEVEL):
            chosen.append(name)
    if "modules.json" not in chosen:
        raise LockRefused("the repo has no modules.json: it is not a sentence-transformers model")
    if not any(n.endswith((".safetensors", *PICKLES)) and "/" not in n for n in chosen):
        raise LockRefused("the repo has no PyTorch weights (safetensors or pytorch_model.bin) at its top level")
    return chosen


def lock_snapshot(snapshot: Path, repo: str, revision: str, names: list[str]) -> Lock:
    """The lock of ``names`` under ``snapshot``; refuses weights over MAX_WEIGHT_BYTES."""
    files = {name: file_entry(Path(snapshot) / name) for name in names}
    weights = sum(e["size"] for n, e in files.items() if n.endswith((".safetensors", *PICKLES)))
    if weights > MAX_WEIGHT_BYTES:
        raise LockRefused(f"{repo}@{revision} has {weights / 1e9:.1f} GB of weights; models over "
                          f"{MAX_WEIGHT_BYTES / 1e9:.1f} GB are out of scope")
    return Lock(repo=repo, revision=revision, files=files)


def lock_from_hub(repo: str, revision: str, endpoint: str, token: str | None, cache_dir: str | None) -> tuple[Lock, Path]:
    """List the revision's files, choose, download them once and lock them; returns (lock, snapshot)."""
    from huggingface_hub import HfApi, snapshot_download

    info = HfApi(endpoint=endpoint, token=token or False).model_info(repo, revision=revision)
    if info.sha and info.sha != revision:
        raise LockRefused(f"{repo}@{revision} resolves to commit {info.sha}: lock a full commit sha, not a branch")
    names = select([s.rfilename for s in info.siblings or []])
    snapshot = snapshot_download(repo_id=repo, revision=revision, allow_patterns=names, endpoint=endpoint,
                                 token=token or False, cache_dir=cache_dir)
    return lock_snapshot(Path(snapshot), repo, revision, names), Path(snapshot)


def lock_local(snapshot: Path, repo: str, revision: str) -> Lock:
    """The lock of a model directory on disk (weights brought by hand), by the same policy."""
    snapshot = Path(snapshot)
    names = [p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()]
    return lock_snapshot(snapshot, repo, revision, select(names))


def write(lock: Lock, path: Path, license: str) -> None:
    """The lock file, reviewed and committed like code: repo, revision, license, policy and files."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    lock.write(path, license=license, policy=POLICY)


def model_license(snapshot: Path) -> str:
    """The license the model card's metadata declares (recorded in the lock, for the SBOM and the license
    gate); empty when there is no card or it names none."""
    from huggingface_hub import ModelCard

    card = Path(snapshot) / CARD
    return str(ModelCard.load(card).data.license or "") if card.is_file() else ""
