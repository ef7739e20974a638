"""Copies of the real model directory whose embedding.json (or ONNX graph) says something else.

Every file is symlinked to the real directory except the ones rewritten; when the lock lists a
rewritten file, its entry is rewritten too, so the service's integrity check still holds.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from app.embedding_meta import NAME, EmbeddingMeta
from app.lock import LOCK_NAME, file_entry


def model_copy(model_dir: Path, dest: Path, **meta: object) -> Path:
    """dest as a copy of model_dir with embedding.json fields replaced by ``meta``."""
    for src in model_dir.rglob("*"):
        if src.is_file() and src.name not in (NAME, LOCK_NAME):
            out = dest / src.relative_to(model_dir)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.symlink_to(src)
    dataclasses.replace(EmbeddingMeta.read(model_dir), **meta).write(dest)
    lock = json.loads((model_dir / LOCK_NAME).read_text())
    if NAME in lock["files"]:
        lock["files"][NAME] = file_entry(dest / NAME)
    (dest / LOCK_NAME).write_text(json.dumps(lock, indent=2) + "\n")
    return dest


def drop_token_type_ids(onnx_path: Path) -> None:
    """Rewrite the graph so it takes no token_type_ids (computed inside as zeros), like a non-BERT model."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(onnx_path.resolve()))
    graph = model.graph
    kept = [i for i in graph.input if i.name != "token_type_ids"]
    del graph.input[:]
    graph.input.extend(kept)
    graph.initializer.append(numpy_helper.from_array(np.array(0, dtype=np.int64), "zero_i64"))
    graph.node.insert(0, helper.make_node("Mul", ["input_ids", "zero_i64"], ["token_type_ids"]))
    onnx_path.unlink()
    onnx.save(model, str(onnx_path))
